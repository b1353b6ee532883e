"""A small program for the monitor's subprocess tests: run one session, optionally
with the monitor server and/or the live terminal view, for a while.

    python tests/monitor/app.py --settings S --profile t [--monitor URL_FILE] [--live]
                                [--jsonl] [--for SECONDS]

It wires things the way ``feedctl run`` does, without depending on the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from feedctl import build_plugin_manager
from feedctl.logs import configure_logging
from feedctl.monitor import Monitor, live_view
from feedctl.output import jsonl
from feedctl.session import Session
from tests.core import scripted
from tests.monitor import walkfeed


def _write(path: str, text: str) -> None:
    Path(path).write_text(text)


async def main(args: argparse.Namespace) -> None:
    pm = build_plugin_manager([scripted, walkfeed], load_entrypoints=False)
    session = Session(args.profile, settings_path=args.settings, plugin_manager=pm)
    configure_logging(session.settings.logging.format, session.settings.logging.level)
    await session.start()
    monitor = Monitor(session, session.settings.monitor) if args.monitor else None
    tasks: list[asyncio.Task[None]] = []
    try:
        if monitor is not None:
            await monitor.start()
            _write(args.monitor, str(monitor.url))
        if args.live:
            url = monitor.url if monitor is not None else None
            tasks.append(asyncio.create_task(live_view(session, refresh=0.25, monitor_url=url)))
        if args.jsonl:
            stream = session.events(name="jsonl")

            async def pump() -> None:
                async for ev in stream:
                    print(jsonl(ev), flush=True)

            tasks.append(asyncio.create_task(pump()))
        await asyncio.sleep(args.seconds)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if monitor is not None:
            await monitor.stop()
        await session.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--settings", required=True)
    parser.add_argument("--profile", default="t")
    parser.add_argument("--monitor", metavar="URL_FILE", default=None)
    parser.add_argument("--live", action="store_true")
    parser.add_argument("--jsonl", action="store_true")
    parser.add_argument("--for", dest="seconds", type=float, default=5.0)
    asyncio.run(main(parser.parse_args()))
