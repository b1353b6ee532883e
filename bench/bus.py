"""Events through Redis Streams: W workers x N accounts, a remote consumer beside them.

One command: ``python bench/bus.py [--workers 3] [--accounts 100] [--seconds 60]``.

Runs, on this machine: a redis-server (Debian's, no persistence, a temporary directory),
the simulator (``feedctl sim``, a position open on each symbol, one of them changed,
closed or reopened every ``--lifecycle-every`` s), and ``--workers`` processes of
``feedctl worker`` sharing ``--accounts`` profiles (each its own account name, its own
lease, stream, snapshot, private and public socket, book and publisher; only the
hybrid feed, no REST standby). The simulator serves one account, so every profile
watches that account under its own name: the same positions, N times (until the
many-accounts issue gives the simulator several accounts).

Once every account is published, one ``RemoteSession`` in this process reads every
account for ``--seconds`` and records, per event, its receive time minus the exchange
time it reports (the mark's for a price, the position's for a lifecycle). Beside it, in
the same run, the in-process figure: the same age when the event reached each worker's
publisher (a consumer in the worker's process), read from the workers' metrics
(``feedctl_bus_event_age_seconds``; a histogram, so its percentiles are interpolated
within buckets). Throughput is the entries the workers wrote per second (metrics);
memory is Redis's MEMORY USAGE of each account's keys at the end, divided by the
entries they hold, projected to one hour at the default retention (24 h and MAXLEN
10000 per account: within an hour only MAXLEN can cut).

Prints a table and writes bench/results/bus.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp
import redis.asyncio as aioredis

from feedctl import EventKind, PositionEvent, RemoteSession
from feedctl.simulator import SimControl

FEEDCTL = str(Path(sys.executable).with_name("feedctl"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    data = sorted(values)
    return data[min(len(data) - 1, int(len(data) * q))]


def settings_file(folder: Path, urls: dict[str, str], accounts: list[str]) -> Path:
    text = ""
    for a in accounts:
        text += f"""
[{a}]
mode = "production"
[{a}.account]
name = "{a}"
[{a}.endpoints]
rest = "{urls['rest']}"
public_ws = "{urls['public_ws']}"
public_ws_inverse = "{urls['public_ws_inverse']}"
private_ws = "{urls['private_ws']}"
[{a}.feeds.bybit_hybrid]
kind = "bybit_hybrid"
role = "primary"
audit_interval = "0"
[{a}.feeds.rest_polling]
kind = "rest_polling"
enabled = false
[{a}.trailing_stop]
enabled = false
[{a}.logging]
level = "WARNING"
"""
    path = folder / "bench.toml"
    path.write_text(text)
    return path


def histogram(text: str, name: str) -> tuple[list[tuple[float, float]], float, float]:
    """(upper bound, cumulative count) pairs, sum and count of one histogram."""
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le),
                            float(line.rsplit(" ", 1)[1])))
        elif line.startswith(name + "_sum "):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_count "):
            count = float(line.rsplit(" ", 1)[1])
    return buckets, total, count


def scalar(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def merged(hists: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    out: dict[float, float] = {}
    for h in hists:
        for le, n in h:
            out[le] = out.get(le, 0.0) + n
    return sorted(out.items())


def hist_pct(buckets: list[tuple[float, float]], q: float) -> float:
    """A percentile from cumulative buckets, linear within the bucket it falls in."""
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    target = q * buckets[-1][1]
    lo_le, lo_n = 0.0, 0.0
    for le, n in buckets:
        if n >= target:
            if le == float("inf"):
                return lo_le
            return lo_le + (le - lo_le) * ((target - lo_n) / max(n - lo_n, 1e-9))
        lo_le, lo_n = le, n
    return lo_le


async def scrape(http: aiohttp.ClientSession, port: int) -> str:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        return await resp.text()


async def lifecycles(ctl: SimControl, symbols: list[str], every: float,
                     stop: asyncio.Event) -> int:
    """Change, close or reopen one position every ``every`` s; returns how many."""
    n, i = 0, 0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await stop.wait()
        if stop.is_set():
            break
        sym = symbols[i % len(symbols)]
        step = (i // len(symbols)) % 3
        if step == 0:
            await ctl.set_position(sym, "Buy", "2")
        elif step == 1:
            await ctl.close_position(sym)
        else:
            await ctl.set_position(sym, "Buy", "1")
        i += 1
        n += 1
    return n


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start redis-server, the simulator and the workers; measure; stop them all."""
    folder = Path(tempfile.mkdtemp(prefix="feedctl-bus-"))
    procs: list[subprocess.Popen[bytes]] = []
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: apt-get install -y redis-server")
    redis_port = free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    try:
        procs.append(subprocess.Popen(
            [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(folder),
             "--save", "", "--appendonly", "no", "--logfile", str(folder / "redis.log")]))
        sim = subprocess.Popen([FEEDCTL, "sim", "--symbols", str(args.symbols),
                                "--tick-interval", str(args.tick_interval)],
                               stdout=subprocess.PIPE)
        procs.append(sim)
        assert sim.stdout is not None
        info = json.loads(sim.stdout.readline())
        accounts = [f"acc{i:03d}" for i in range(1, args.accounts + 1)]
        settings = settings_file(folder, info, accounts)
        env = dict(os.environ)
        for a in accounts:
            env[f"FEEDCTL_{a.upper()}__ACCOUNT__API_KEY"] = info["api_key"]
            env[f"FEEDCTL_{a.upper()}__ACCOUNT__API_SECRET"] = info["api_secret"]
        ports = [free_port() for _ in range(args.workers)]
        profile_args = [x for a in accounts for x in ("--profile", a)]
        t0 = time.monotonic()
        for w, port in enumerate(ports):
            procs.append(subprocess.Popen(
                [FEEDCTL, "worker", *profile_args, "--settings", str(settings),
                 "--redis", url, "--owner", f"w{w}", "--metrics-port", str(port)],
                env=env, stderr=(folder / f"w{w}.log").open("wb")))
        return asyncio.run(measure(args, info, url, ports, accounts, t0, folder))
    finally:  # the workers first (they release their leases), then the sim and Redis
        for group in (procs[2:], procs[:2]):
            for p in group:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in group:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


async def measure(args: argparse.Namespace, info: dict[str, str], url: str,
                  ports: list[int], accounts: list[str], t0: float, folder: Path
                  ) -> dict[str, Any]:
    redis = aioredis.from_url(url, decode_responses=True)
    try:
        for _ in range(200):
            with contextlib.suppress(Exception):
                await redis.ping()
                break
            await asyncio.sleep(0.05)
        symbols = (await _symbols(info["control"]))[: args.symbols]
        async with SimControl(info["control"]) as ctl:
            for sym in symbols:
                await ctl.set_position(sym, "Buy", "1")
            share = -(-len(accounts) // args.workers)
            while True:  # every account leased and published, no worker past its share
                ready, owners = 0, {}
                for a in accounts:
                    if await redis.hget(f"feedctl:snap:{a}", "_last"):
                        ready += 1
                    v = await redis.get(f"feedctl:lease:{a}")
                    owners[a] = v.rpartition(":")[0] if v else None
                per = [list(owners.values()).count(f"w{w}") for w in range(args.workers)]
                if ready == len(accounts) and None not in owners.values() and \
                        max(per) <= share:
                    break
                if time.monotonic() - t0 > args.start_timeout:
                    raise SystemExit(f"only {ready}/{len(accounts)} accounts published "
                                     f"after {args.start_timeout} s; see {folder}")
                await asyncio.sleep(0.2)
            start_s = time.monotonic() - t0
            async with aiohttp.ClientSession() as http:
                before = [await scrape(http, p) for p in ports]
                mem0 = (await redis.info("memory"))["used_memory"]
                len0 = {a: await redis.xlen(f"feedctl:events:{a}") for a in accounts}
                remote = await consume(url, accounts, symbols, args, ctl)
                after = [await scrape(http, p) for p in ports]
            mem1 = (await redis.info("memory"))["used_memory"]
            len1 = {a: await redis.xlen(f"feedctl:events:{a}") for a in accounts}
            events_usage = snap_usage = 0
            for a in accounts:
                events_usage += int(await redis.memory_usage(f"feedctl:events:{a}",
                                                             samples=0) or 0)
                snap_usage += int(await redis.memory_usage(f"feedctl:snap:{a}",
                                                           samples=0) or 0)
            marks_usage = 0
            async for key in redis.scan_iter(match="feedctl:marks:*"):
                marks_usage += int(await redis.memory_usage(key, samples=0) or 0)
    finally:
        await redis.aclose()

    seconds = remote["seconds"]
    written = sum(scalar(a, "feedctl_bus_events_published_total") +
                  scalar(a, "feedctl_bus_marks_published_total") for a in after) - sum(
        scalar(b, "feedctl_bus_events_published_total") +
        scalar(b, "feedctl_bus_marks_published_total") for b in before)
    ages = merged([_delta(histogram(a, "feedctl_bus_event_age_seconds")[0],
                          histogram(b, "feedctl_bus_event_age_seconds")[0])
                   for a, b in zip(after, before, strict=True)])
    pub = merged([_delta(histogram(a, "feedctl_bus_publish_latency_seconds")[0],
                         histogram(b, "feedctl_bus_publish_latency_seconds")[0])
                  for a, b in zip(after, before, strict=True)])
    entries_added = sum(len1[a] - len0[a] for a in accounts)
    entries_held = sum(len1.values())
    bytes_per_entry = events_usage / max(entries_held, 1)
    per_hour = entries_added / len(accounts) / seconds * 3600
    kept = min(per_hour, 10_000)
    return {
        "workers": args.workers, "accounts": args.accounts, "symbols": len(symbols),
        "seconds": round(seconds, 1), "start_seconds": round(start_s, 1),
        "accounts_per_worker": {w: sum(1 for o in owners.values() if o == w)
                                for w in sorted(set(owners.values()) - {None})},
        "entries_written_per_s": round(written / seconds, 1),
        "remote": remote["figures"],
        "in_process_age_ms": {"p50": round(hist_pct(ages, 0.5) * 1000, 2),
                              "p99": round(hist_pct(ages, 0.99) * 1000, 2),
                              "count": int(ages[-1][1]) if ages else 0},
        "publish_latency_ms": {"p50": round(hist_pct(pub, 0.5) * 1000, 2),
                               "p99": round(hist_pct(pub, 0.99) * 1000, 2)},
        "lifecycle_changes": remote["lifecycle_changes"],
        "redis_used_memory_delta_bytes": mem1 - mem0,
        "events_entries_per_account_per_hour": round(per_hour, 1),
        "bytes_per_events_entry": round(bytes_per_entry, 1),
        "snapshot_bytes_per_account": round(snap_usage / len(accounts)),
        "memory_per_account_after_1h_bytes": round(kept * bytes_per_entry +
                                                   snap_usage / len(accounts)),
        "marks_streams_bytes": marks_usage,
    }


def _delta(a: list[tuple[float, float]], b: list[tuple[float, float]]
           ) -> list[tuple[float, float]]:
    prev = dict(b)
    return [(le, n - prev.get(le, 0.0)) for le, n in a]


async def _symbols(control: str) -> list[str]:
    async with SimControl(control) as ctl:
        return [p["symbol"] for p in await ctl.prices()]


async def consume(url: str, accounts: list[str], symbols: list[str],
                  args: argparse.Namespace, ctl: SimControl) -> dict[str, Any]:
    price: list[float] = []
    lifecycle: list[float] = []
    ids: list[str] = []
    gaps = 0
    stop = asyncio.Event()
    async with RemoteSession(url, accounts=accounts) as rs:
        stream = rs.events()

        async def pump() -> None:
            nonlocal gaps
            async for ev in stream:
                now_ms = time.time() * 1000
                if getattr(ev, "type", "") == "gap":
                    gaps += 1
                if not isinstance(ev, PositionEvent) or stream.meta is None or \
                        stream.meta.stream_id is None:
                    continue  # the snapshot: no latency to speak of
                if ev.kind is EventKind.PRICE:
                    if ev.position.mark_exchange_ms:
                        price.append(now_ms - ev.position.mark_exchange_ms)
                else:
                    if stream.meta.event_id:
                        ids.append(stream.meta.event_id)
                    if ev.position.exchange_ms and not ev.synthetic:
                        lifecycle.append(now_ms - ev.position.exchange_ms)

        task = asyncio.create_task(pump())
        changer = asyncio.create_task(lifecycles(ctl, symbols, args.lifecycle_every, stop))
        t0 = time.monotonic()
        await asyncio.sleep(args.seconds)
        stop.set()
        changes = await changer
        await asyncio.sleep(2.0)  # the last lifecycle's events arrive
        seconds = time.monotonic() - t0 - 2.0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return {"seconds": seconds, "lifecycle_changes": changes, "figures": {
        "price_events": len(price), "price_ms_p50": round(pct(price, 0.5), 1),
        "price_ms_p99": round(pct(price, 0.99), 1),
        "lifecycle_events": len(lifecycle),
        "lifecycle_ms_p50": round(pct(lifecycle, 0.5), 1) if lifecycle else None,
        "lifecycle_ms_p99": round(pct(lifecycle, 0.99), 1) if lifecycle else None,
        "duplicate_event_ids": len(ids) - len(set(ids)), "gaps": gaps,
        "price_ms_mean": round(statistics.fmean(price), 1) if price else None}}


def table(r: dict[str, Any]) -> str:
    rm, ip = r["remote"], r["in_process_age_ms"]
    rows = [
        ("workers x accounts", f"{r['workers']} x {r['accounts']} "
                               f"(per worker {r['accounts_per_worker']})"),
        ("measured for", f"{r['seconds']} s after {r['start_seconds']} s to publish all"),
        ("entries written to Redis / s", r["entries_written_per_s"]),
        ("price: exchange -> remote consumer p50 / p99 ms",
         f"{rm['price_ms_p50']} / {rm['price_ms_p99']} ({rm['price_events']} events)"),
        ("price: exchange -> in-process (publisher) p50 / p99 ms",
         f"{ip['p50']} / {ip['p99']} ({ip['count']} events, bucket-interpolated)"),
        ("lifecycle: exchange -> remote consumer p50 / p99 ms",
         f"{rm['lifecycle_ms_p50']} / {rm['lifecycle_ms_p99']} "
         f"({rm['lifecycle_events']} events)"),
        ("publish (publisher -> Redis ack) p50 / p99 ms",
         f"{r['publish_latency_ms']['p50']} / {r['publish_latency_ms']['p99']}"),
        ("duplicate event ids / gaps", f"{rm['duplicate_event_ids']} / {rm['gaps']}"),
        ("events entries / account / hour", r["events_entries_per_account_per_hour"]),
        ("bytes / events entry", r["bytes_per_events_entry"]),
        ("Redis memory / account after 1 h (projected)",
         f"{r['memory_per_account_after_1h_bytes'] / 1024:.1f} KiB"),
        ("marks streams (all accounts)", f"{r['marks_streams_bytes'] / 1024:.1f} KiB"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--symbols", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tick-interval", type=float, default=0.1,
                        help="simulator seconds between ticker deltas")
    parser.add_argument("--lifecycle-every", type=float, default=2.0)
    parser.add_argument("--start-timeout", type=float, default=180.0)
    args = parser.parse_args()
    result = run(args)
    print(table(result))
    out = ROOT / "bench" / "results" / "bus.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "result": result}, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
