"""Activities against the Redis of a target with Sentinels: kill the primary, restart a Redis.

The target's ``target.json`` lists each Redis server with role ``redis`` and each Sentinel with
role ``sentinel``; ``extra.redis_sentinels`` holds the sentinels' ``host:port`` list. Which Redis
is the primary changes with every failover, so the activities ask the sentinels.
"""
