"""Events on Redis Streams: a consumer plugin that publishes, leases for workers, and the
``feedctl tail``/``bus status``/``worker`` commands. See docs/redis.md."""
