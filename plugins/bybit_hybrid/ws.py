"""One Bybit V5 WebSocket connection: requests matched to answers, JSON ping/pong
liveness, and a reader that hands data frames to a callback.

A :class:`Conn` owns exactly one task (``_serve``: reader + pinger); ``close()``
cancels and awaits it and closes the socket. A data frame created well after a ping
that is still unanswered (``pong_overdue_after``) is *held*, not applied, and a probe
ping is sent at once: the server answers pings in order, so the original's pong coming
first means it was merely late (the held frames are applied, in order), the probe's
coming first means the original's was lost - and frames with it. When the connection
dies for any reason (server close, missing pong, a lost pong, network error)
:attr:`Conn.closed` resolves with the
reason, every pending request fails with :class:`ConnectionLost`, and the owner
decides what to do (reconnect with backoff, or ignore an old socket being replaced).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from .parse import Answer, Problem, classify_answer, decode


async def _finish(task: asyncio.Task[None]) -> None:
    """Wait for a cancelled task to end, even if we are cancelled meanwhile (then
    re-raise): suppressing CancelledError would eat the caller's cancellation and keep a
    stopping feed running; giving up early would leave the socket's task behind. The
    wait is bounded: the task's own cleanup is bounded by the close timeout."""
    interrupted = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError


class _RedactAuthFrames(logging.Filter):
    """websockets logs every frame at DEBUG; the auth frame carries the API key."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if any(b'"op":"auth"' in bytes(getattr(a, "data", b"") or b"") for a in args):
            record.args = ("<auth frame, redacted>",)
        return True


#: The websockets library's logger for our connections (frames at DEBUG, redacted).
WS_LOG = logging.getLogger("feedctl.feed.bybit_hybrid.websockets")
WS_LOG.addFilter(_RedactAuthFrames())


class _DispatchingConnection(ClientConnection):
    """Hands each complete text frame to ``on_frame`` as it arrives, instead of queueing
    it for a ``recv()`` coroutine: no future, no task switch per message, and natural
    backpressure.

    Two levels. ``process_event`` (websockets' per-event hook) hands over the text frames
    websockets parsed. Once the connection is open, uncompressed, and websockets' parser
    stands between two frames with nothing buffered, ``data_received`` parses the
    frames itself (:meth:`_fast`): an unfragmented, unmasked text frame within
    ``max_size`` goes straight to ``on_frame`` as a view of the received bytes (no copy);
    every other frame (ping, pong, close, binary, fragments, anything odd) is handed to
    websockets whole, so it sees complete frames only and its parser stays between
    frames. If it ever does not (a fragmented message, a close), the rest goes to
    websockets, whose parser serves until it stands between frames again. Fragmented or
    binary messages take the normal ``recv()`` path either way."""

    #: ``on_frame(data, received_ns, dispatched)``: ``dispatched`` is True for a frame a
    #: socket read hands over (``on_read_end`` follows), False for one websockets hands
    #: over outside a read (the frames left at the end of the stream)
    on_frame: Callable[[bytes | bytearray | memoryview, int, bool], None] | None = None
    #: called once the frames of one socket read were handed to ``on_frame``
    on_read_end: Callable[[], None] | None = None
    #: True while :meth:`data_received` runs
    _reading = False
    #: False leaves all parsing to websockets (bench/hybrid_capacity.py ``ours+wsparse``
    #: measures the feed on websockets' parser, as the ceiling row reads)
    fast_parsing = True
    #: True while :meth:`_fast` parses (see the class docstring)
    _fast_on = False
    #: the start of a frame not complete yet (fast parsing)
    _rest = b""

    def process_event(self, event: Any) -> None:
        on_frame = self.on_frame
        if (on_frame is not None and self.response is not None and type(event) is Frame
                and event.opcode is Opcode.TEXT and event.fin):
            on_frame(event.data, time.time_ns(), self._reading)
            return
        super().process_event(event)

    def data_received(self, data: bytes) -> None:
        self._reading = True
        try:
            if self._fast_on:
                self._fast(data, time.time_ns())
            else:
                super().data_received(data)
                if self.on_frame is not None and self.fast_parsing and self._between_frames():
                    self._fast_on = True
        finally:
            self._reading = False
        read_end = self.on_read_end
        if read_end is not None:
            try:
                read_end()
            except Exception:  # the transport's callback: a bug must not break the socket
                WS_LOG.exception("on_read_end failed")

    def _between_frames(self) -> bool:
        """True if websockets' parser waits for the first byte of a frame, with nothing
        buffered, on an open connection without extensions and no message in progress."""
        proto = self.protocol
        if (proto.state is not State.OPEN or proto.extensions or proto.reader.buffer
                or proto.current_size is not None or self.response is None):
            return False
        gen: Any = proto.parser
        while getattr(gen, "gi_yieldfrom", None) is not None:
            gen = gen.gi_yieldfrom
        return getattr(gen, "__name__", None) == "at_eof"  # parse() at the loop's top

    def _fast(self, data: bytes, received_ns: int) -> None:
        buf = self._rest + data if self._rest else data
        view = memoryview(buf)
        on_frame = self.on_frame
        limit = self.protocol.max_message_size
        n, i = len(buf), 0
        while n - i >= 2:
            b0, b1 = buf[i], buf[i + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if n - i < 4:
                    break
                length, head = (buf[i + 2] << 8) | buf[i + 3], 4
            elif length == 127:
                if n - i < 10:
                    break
                length, head = int.from_bytes(buf[i + 2:i + 10]), 10
            if b1 & 0x80:
                head += 4  # masked (a protocol error from a server: websockets says so)
            if limit is not None and length > limit:  # websockets refuses it
                self._slow(view[i:])
                return
            end = i + head + length
            if end > n:
                break
            if b0 == 0x81 and not b1 & 0x80 and on_frame is not None:  # FIN, text
                on_frame(view[i + head:end], received_ns, True)
            else:
                super().data_received(bytes(view[i:end]))
                if not self._between_frames():
                    self._slow(view[end:])
                    return
            i = end
        self._rest = bytes(view[i:]) if i < n else b""

    def _slow(self, rest: memoryview) -> None:
        """Back to websockets' parser, starting with ``rest``."""
        self._fast_on = False
        self._rest = b""
        if rest:
            super().data_received(bytes(rest))


#: Frames held behind one unanswered ping before the connection is given up.
MAX_HELD_FRAMES = 50_000


class ConnectionLost(Exception):
    """The socket died (or never answered); the caller reconnects."""


class RequestTimedOut(ConnectionLost):
    """A request had no answer within its time: the socket may be dead, or a server
    that stalled may have dropped just that request (it reads but answers nothing while
    stalled) - a caller that can tell the two apart may send it again."""


class RequestRejected(Exception):
    """Bybit answered a request with ``success: false``."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(f"{answer.op} rejected: {answer.ret_msg or 'no reason given'}")
        self.answer = answer


class Conn:
    """A Bybit WebSocket with request/answer matching and JSON ping/pong."""

    def __init__(
        self,
        *,
        name: str,
        url: str,
        on_data: Callable[[dict[str, Any], int], None],
        on_read_end: Callable[[], None] | None = None,
        on_raw: Callable[[bytes | bytearray | memoryview | str, int], bool] | None = None,
        ping_interval: float,
        pong_timeout: float,
        request_timeout: float,
        log: logging.LoggerAdapter[logging.Logger],
        count: Callable[[str], None],
        report: Callable[[Problem, str], None],
        pong_overdue_after: float | None = None,
        server_offset_ms: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.name, self.url = name, url
        self._overdue_ms = None if pong_overdue_after is None else int(pong_overdue_after * 1000)
        self._server_offset_ms = server_offset_ms
        #: wall-clock ns at which the unanswered ping was sent; None when answered
        self._ping_sent_ns: int | None = None
        #: req_id of the unanswered ping, and of the probe sent to test it
        self._ping_id: str | None = None
        self._probe_id: str | None = None
        self._probe_wanted = False
        #: data frames held while an overdue ping is unanswered (see the module doc)
        self._held: list[tuple[dict[str, Any], int]] = []
        self._wake = asyncio.Event()
        self._on_data = on_data
        #: a data frame's fast path, from its bytes: True if it took the frame, False to
        #: leave it to the general path (decoded to a dict: ``on_data`` or an answer).
        #: Tried only for frames a socket read hands over (``on_read_end`` is called
        #: after them), while no ping is unanswered and nothing is held (those frames are
        #: judged by their creation time first).
        self._on_raw = on_raw
        #: called after the data frames of one socket read were handed to ``on_data``
        self._on_read_end = on_read_end
        self._ping_interval, self._pong_timeout = ping_interval, pong_timeout
        self._request_timeout = request_timeout
        self._log, self._count, self._report = log, count, report
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[str, asyncio.Future[Answer]]] = {}
        #: req_ids of the latest requests given up on (no answer in time): their late
        #: answers are expected, not "unsolicited"
        self._given_up: deque[str] = deque(maxlen=64)
        self._ids = itertools.count(1)
        self._pong = asyncio.Event()
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.opened_at: float | None = None
        self.last_pong: float | None = None
        #: wall-clock ns of the last frame of any kind (a frame can arrive after pushes
        #: were lost: a stall that ended before the unanswered ping timed out)
        self.last_frame_ns = time.time_ns()
        #: wall-clock ns of the opening and of the last pong: nothing was lost before
        #: the newest of them
        self.opened_ns: int | None = None
        self.last_pong_ns: int | None = None

    # ----------------------------------------------------------------- lifecycle
    async def open(self) -> None:
        """Connect and start serving; raises ConnectionLost if the handshake fails."""
        try:
            self._ws = await websockets.connect(
                self.url,
                ping_interval=None,  # liveness is Bybit's JSON ping, see _ping()
                compression=None,
                open_timeout=self._request_timeout,
                close_timeout=1.0,
                proxy=None,
                max_queue=256,
                logger=WS_LOG,
                create_connection=_DispatchingConnection,
            )
        except Exception as exc:
            raise ConnectionLost(f"connect to {self.name} failed: {type(exc).__name__}: {exc}")\
                from None
        self.opened_at = time.monotonic()
        self.opened_ns = time.time_ns()
        if isinstance(self._ws, _DispatchingConnection):
            self._ws.on_frame = self._frame
            self._ws.on_read_end = self._on_read_end
        self._task = asyncio.create_task(self._serve(), name=f"bybit-{self.name}")

    @property
    def alive(self) -> bool:
        return self._ws is not None and not self.closed.done()

    @property
    def holding(self) -> bool:
        """Frames are held behind an overdue ping (closing now would lose them)."""
        return bool(self._held)

    def age(self) -> float:
        return 0.0 if self.opened_at is None else time.monotonic() - self.opened_at

    def known_good_ns(self) -> int:
        """Wall-clock ns up to which no frame was lost: the last answered ping (or the
        opening), unless the last frame is older. A frame after the last pong does not
        prove that nothing was lost before it (a stall may have ended just before)."""
        good = self.last_pong_ns if self.last_pong_ns is not None else self.opened_ns
        return self.last_frame_ns if good is None else min(good, self.last_frame_ns)

    async def close(self) -> None:
        """Stop serving and close the socket; safe to call twice, never raises."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await _finish(task)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        self._finish("closed by us")

    # ----------------------------------------------------------------- requests
    async def request(
        self, op: str, args: list[Any] | None = None, answer_within: float | None = None
    ) -> Answer:
        """Send ``{"req_id", "op", "args"}``; return the answer or raise RequestRejected,
        ConnectionLost (also when no answer comes within the request timeout)."""
        if not self.alive or self._ws is None:
            raise ConnectionLost(f"{self.name} socket is closed")
        req_id = str(next(self._ids))
        fut: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = (op, fut)
        frame: dict[str, Any] = {"req_id": req_id, "op": op}
        if args is not None:
            frame["args"] = args
        try:
            await self._ws.send(orjson.dumps(frame), text=True)
            async with asyncio.timeout(answer_within or self._request_timeout):
                answer = await fut
        except TimeoutError:
            self._given_up.append(req_id)
            raise RequestTimedOut(
                f"no answer to {op!r} on {self.name} within "
                f"{answer_within or self._request_timeout:g}s"
            ) from None
        except websockets.ConnectionClosed as exc:
            raise ConnectionLost(f"{self.name} closed: {exc}") from None
        finally:
            self._pending.pop(req_id, None)
        if not answer.success:
            raise RequestRejected(answer)
        return answer

    # ----------------------------------------------------------------- serving
    async def _serve(self) -> None:
        reader = asyncio.create_task(self._read())
        pinger = asyncio.create_task(self._ping())
        reason = "closed"
        try:
            done, _ = await asyncio.wait({reader, pinger}, return_when=asyncio.FIRST_COMPLETED)
            task = done.pop()
            exc = task.exception()
            reason = str(exc) if exc is not None else self._close_reason()
        finally:
            for t in (reader, pinger):
                t.cancel()
            await asyncio.gather(reader, pinger, return_exceptions=True)
            if self._ws is not None:
                with contextlib.suppress(Exception):
                    await self._ws.close()
            self._finish(reason)

    def _finish(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        for _op, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost(f"{self.name} lost: {reason}"))
        self._pending.clear()

    def _close_reason(self) -> str:
        ws = self._ws
        code = getattr(ws, "close_code", None)
        text = getattr(ws, "close_reason", "") or ""
        return f"{self.name} closed by server (code {code}{': ' + text if text else ''})"

    async def _read(self) -> None:
        """Wait for the close; messages normally arrive through ``_frame`` directly."""
        assert self._ws is not None
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self._ws:
                self._frame(raw, time.time_ns(), dispatched=False)

    def _frame(self, raw: bytes | bytearray | memoryview | str, received_ns: int,
               dispatched: bool = True) -> None:
        """One text frame: ``dispatched`` while the socket's read hands it over (so
        ``on_read_end`` follows), False otherwise (the ``recv()`` path, the frames
        websockets hands over at the end of the stream)."""
        if self.closed.done():  # declared lost (see _pong_lost): nothing more is applied
            return
        self.last_frame_ns = received_ns
        on_raw = self._on_raw
        if (on_raw is not None and dispatched and self._ping_sent_ns is None
                and not self._held):
            try:
                if on_raw(raw, received_ns):
                    return
            except Exception:  # a handler bug must not kill the connection
                self._count("handler_errors")
                self._log.exception("error handling a %s frame", self.name)
                return
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._problem(decode(bytes(raw) if isinstance(raw, memoryview) else raw))  # type: ignore[arg-type]
            return
        if type(msg) is not dict:
            self._problem(Problem("malformed", f"not a JSON object: {str(msg)[:80]}"))
            return
        try:
            if "topic" in msg:
                if self._held or (self._ping_sent_ns is not None and self._overdue(msg)):
                    self._hold(msg, received_ns)
                    return
                self._on_data(msg, received_ns)
            else:
                self._on_answer(msg)
        except Exception:  # a handler bug must not kill the connection
            self._count("handler_errors")
            self._log.exception("error handling a %s frame", self.name)

    def _overdue(self, msg: dict[str, Any]) -> bool:
        """True if ``msg`` was created so long after the unanswered ping that the server
        should have answered it first: its pong is late, or was lost in transit (and
        frames with it). Frames of one connection arrive in the order they were sent."""
        sent_ns, overdue = self._ping_sent_ns, self._overdue_ms
        created = msg.get("creationTime", msg.get("ts"))
        offset = self._server_offset_ms()  # None: not measured yet, the check would guess
        if sent_ns is None or overdue is None or offset is None or type(created) is not int:
            return False
        return created - (sent_ns // 1_000_000 + offset) > overdue

    def _hold(self, msg: dict[str, Any], received_ns: int) -> None:
        """Keep ``msg`` until the ping's fate is known; ask the pinger for a probe."""
        if len(self._held) >= MAX_HELD_FRAMES:
            self._lose(f"{self.name}: {len(self._held)} frames held behind an unanswered "
                       "ping")
            return
        if not self._held:
            self._count("pongs_overdue")
            self._probe_wanted = True
            self._wake.set()
        self._held.append((msg, received_ns))

    def _release(self) -> None:
        """The ping was answered (late): apply the held frames, in order."""
        held, self._held = self._held, []
        for msg, received_ns in held:
            if self.closed.done():
                return
            try:
                self._on_data(msg, received_ns)
            except Exception:  # a handler bug must not kill the connection
                self._count("handler_errors")
                self._log.exception("error handling a %s frame", self.name)

    def _lose(self, detail: str) -> None:
        """The pong was lost, so frames may have been: finish, applying nothing held."""
        self._count("pongs_lost")
        self._held = []
        self._finish(f"{self.name} lost frames: {detail}")

    def _problem(self, problem: Problem) -> None:
        self._report(problem, self.name)

    def _on_answer(self, msg: dict[str, Any]) -> None:
        answer = classify_answer(msg)
        if isinstance(answer, Problem):
            self._problem(answer)
            return
        if answer.op == "pong":
            if (answer.req_id is not None and answer.req_id == self._probe_id
                    and self._ping_sent_ns is not None):
                # the probe, sent after the ping, was answered first: the ping's pong
                # was lost, and whatever the server sent with it
                self._lose("a probe ping was answered before the ping sent earlier")
                return
            if (answer.req_id is not None and self._ping_id is not None
                    and answer.req_id not in (self._ping_id, self._probe_id)):
                return  # an answer to an older ping
            self.last_pong = time.monotonic()
            self.last_pong_ns = time.time_ns()
            self._ping_sent_ns = None
            self._ping_id = self._probe_id = None
            self._probe_wanted = False
            self._pong.set()
            self._wake.set()
            if self._held:
                self._count("pongs_late")
                self._release()
            return
        if answer.req_id is not None:  # a request given up on answers late: dropped
            if answer.req_id in self._given_up:
                self._count("late_answers")
                self._log.debug("%s: late answer to %s %s: %s", self.name, answer.op,
                                answer.req_id, answer.ret_msg or "ok")
                return
            entry = self._pending.get(answer.req_id)
        else:  # no req_id echoed: the oldest pending request of that op
            entry = next((e for e in self._pending.values() if e[0] == answer.op), None)
        if entry is not None and not entry[1].done():
            entry[1].set_result(answer)
        elif not answer.success:
            self._count("rejected_requests")
            self._log.warning("%s: unsolicited error answer: %s", self.name, answer.ret_msg,
                              extra={"socket": self.name})

    async def _ping(self) -> None:
        assert self._ws is not None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._ping_interval)
            self._pong.clear()
            self._ping_id = f"p{next(self._ids)}"
            self._probe_id, self._probe_wanted = None, False
            self._ping_sent_ns = time.time_ns()
            if not await self._send_ping(self._ping_id):
                return
            deadline = loop.time() + self._pong_timeout
            while not self._pong.is_set():
                self._wake.clear()
                if self._probe_wanted and self._probe_id is None:
                    self._probe_id = f"q{next(self._ids)}"
                    if not await self._send_ping(self._probe_id):
                        return
                    continue
                try:
                    async with asyncio.timeout_at(deadline):
                        await self._wake.wait()
                except TimeoutError:
                    self._count("pong_timeouts")
                    raise ConnectionLost(
                        f"{self.name}: no pong within {self._pong_timeout:g}s"
                    ) from None

    async def _send_ping(self, req_id: str) -> bool:
        assert self._ws is not None
        try:
            await self._ws.send(orjson.dumps({"req_id": req_id, "op": "ping"}), text=True)
        except websockets.ConnectionClosed:
            return False
        return True
