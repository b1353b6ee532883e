"""The Redis ACL rules of the bus's users (docs/redis.md shows them; tests run them).

Every rule is limited to the deployment's keys (``~{prefix}:*``). A read-only consumer
cannot write anything; a group consumer may also move its group's cursor and ack.
"""

from __future__ import annotations


def publisher_rules(prefix: str = "feedctl") -> str:
    """A worker or a publishing ``feedctl run``: its scripts, its keys, nothing else."""
    return (f"~{prefix}:* resetchannels -@all +ping "
            "+evalsha +eval +script|load +hgetall +hget +xinfo|groups "
            # what the scripts call
            "+get +set +exists +xadd +xtrim +hset +hdel +hexists +hincrby +sadd +incr "
            "+pexpire +del")


def reader_rules(prefix: str = "feedctl") -> str:
    """A read-only consumer (``RemoteSession`` without a group, ``feedctl tail``,
    ``feedctl bus status``)."""
    return (f"~{prefix}:* resetchannels -@all +ping +info +xread +xrange "
            "+xrevrange +xlen +xinfo|groups +hgetall +hget +smembers +get +pttl +exists +scan "
            "+type")


def group_reader_rules(prefix: str = "feedctl") -> str:
    """A consumer-group consumer: the reader's rules and its group's commands."""
    return (reader_rules(prefix) + " +xreadgroup +xack +xautoclaim +xgroup|create "
            "+xgroup|setid")
