"""Running one feed: restart on crashes with backoff, stop for good on fatal errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .backoff import Backoff
from .errors import FatalFeedError
from .models import FeedState

if TYPE_CHECKING:
    from .session import FeedRuntime

log = logging.getLogger("feedctl.supervisor")


async def supervise_feed(
    rt: FeedRuntime,
    on_fatal: Callable[[FeedRuntime, BaseException], None],
    backoff: Backoff | None = None,
) -> None:
    """Run ``rt.feed.run()`` until cancelled.

    A :class:`FatalFeedError` marks the feed failed and ends it (no retry storm).
    Any other exception is a bug or an unforeseen failure in the plugin: logged with
    its traceback, counted as ``crashes``, and the feed is restarted after a
    backoff delay. A feed whose ``run()`` returns is marked stopped.
    """
    backoff = backoff or Backoff(0.5, 30.0)
    ctx = rt.ctx
    while True:
        try:
            await rt.feed.run()
        except asyncio.CancelledError:
            raise
        except FatalFeedError as exc:
            ctx.set_state(FeedState.FAILED, str(exc), reason="fatal")
            log.error("feed %s failed: %s", rt.name, exc, extra={"feed": rt.name})
            on_fatal(rt, exc)
            return
        except Exception as exc:
            ctx.count("crashes")
            delay = backoff.next()
            log.exception("feed %s crashed; restarting in %.1fs", rt.name, delay,
                          extra={"feed": rt.name})
            ctx.set_state(FeedState.RECONNECTING, f"crashed: {type(exc).__name__}: {exc}",
                          reason="crash")
            await asyncio.sleep(delay)
            continue
        ctx.set_state(FeedState.STOPPED, "run() returned", reason="stopped")
        return


