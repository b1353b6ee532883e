"""What ``feedctl bus status`` shows: leases, stream lengths, consumer groups' lag."""

from __future__ import annotations

import time
from typing import Any

from feedctl import BusKeys

from .connect import client


async def bus_status(url: str, keys: BusKeys) -> dict[str, Any]:
    redis = client(url)
    try:
        accounts = sorted(await redis.smembers(keys.accounts))
        out: dict[str, Any] = {"accounts": {}, "marks": {}, "at_ms": int(time.time() * 1000)}
        for a in accounts:
            lease = await redis.get(keys.lease(a))
            ttl = await redis.pttl(keys.lease(a)) if lease else None
            snap = await redis.hgetall(keys.snapshot(a))
            stream = keys.events(a)
            groups = []
            if await redis.exists(stream):
                for g in await redis.xinfo_groups(stream):
                    groups.append({"group": g.get("name"), "consumers": g.get("consumers"),
                                   "pending": g.get("pending"), "lag": g.get("lag"),
                                   "last_delivered": g.get("last-delivered-id")})
            owner, _, token = (lease or "").rpartition(":")
            out["accounts"][a] = {
                "lease": {"owner": owner, "token": int(token), "ttl_ms": ttl} if lease
                else None,
                "fence": int(await redis.get(keys.fence(a)) or 0),
                "events_length": await redis.xlen(stream),
                "last_entry": snap.get("_last"),
                "open_positions": sum(1 for k in snap if k.startswith("p:")),
                "groups": groups,
            }
        async for key in redis.scan_iter(match=f"{keys.prefix}:marks:*", count=500):
            out["marks"][key] = await redis.xlen(key)
        out["memory_bytes"] = (await redis.info("memory")).get("used_memory")
        return out
    finally:
        await redis.aclose()


def format_status(status: dict[str, Any]) -> str:
    lines = [f"{'account':<16} {'lease owner':<28} {'token':>5} {'ttl ms':>7} "
             f"{'entries':>8} {'open':>5}  groups (lag/pending)"]
    for name, a in status["accounts"].items():
        lease = a["lease"] or {}
        groups = ", ".join(f"{g['group']} {g['lag']}/{g['pending']}" for g in a["groups"])
        lines.append(f"{name:<16} {lease.get('owner', '-') or '-':<28} "
                     f"{lease.get('token', '-')!s:>5} {lease.get('ttl_ms', '-')!s:>7} "
                     f"{a['events_length']:>8} {a['open_positions']:>5}  {groups or '-'}")
    for key, n in sorted(status["marks"].items()):
        lines.append(f"marks {key}: {n} entries")
    lines.append(f"redis memory: {status.get('memory_bytes')} bytes")
    return "\n".join(lines)
