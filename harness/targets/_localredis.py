"""The local target's Redis: a primary, its replicas and the Sentinels, on their hosts."""

from __future__ import annotations

from harness.targets import _redis
from harness.targets._localbase import LocalBase
from harness.targets._localtopo import RedisAccess
from harness.targets._redis import redis_argv


class LocalRedis(LocalBase):
    """Starts Redis for the local target; how refplat processes reach it."""

    def _start_redis(self, binary: str) -> RedisAccess:
        """The primary, its replicas and the sentinels; how refplat processes reach them."""
        names = self.topology.redis_names()
        primary = self._start_redis_server(binary, names[0], replicaof=None)
        for name in names[1:]:
            self._start_redis_server(binary, name, replicaof=primary)
        if replicas := len(names) - 1:  # writes WAIT for one: they need it streaming
            self._await(
                names[0], lambda t: _redis.await_replicas(primary, replicas=replicas, timeout_s=t)
            )
        url = f"redis://{primary[0]}:{primary[1]}/0"
        wait = ["--redis-wait-replicas", "1"] if self.topology.redis_replicas else []
        if not self.topology.redis_sentinels:
            return RedisAccess(url=url, args=["--redis-url", url, *wait], extra={})
        sentinels = [
            self._start_sentinel(binary, name, primary=primary)
            for name in self.topology.sentinel_names()
        ]
        where = [f"{host}:{port}" for host, port in sentinels]
        args = [a for w in where for a in ("--redis-sentinel", w)]
        return RedisAccess(
            url=url,
            args=[*args, "--redis-master", _redis.MASTER_NAME, *wait],
            extra={"redis_master": _redis.MASTER_NAME, "redis_sentinels": ",".join(where)},
            sentinels=sentinels,
        )

    def _start_redis_server(
        self, binary: str, name: str, *, replicaof: tuple[str, int] | None
    ) -> tuple[str, int]:
        place = self._place(name)
        port = place.port("redis")
        data = self.run_dir / name
        data.mkdir(exist_ok=True)
        argv = redis_argv(
            binary,
            address=place.address,
            port=port,
            data=data,
            fsync=self.topology.redis_fsync,
            min_replicas=1 if self.topology.redis_replicas else 0,
        )
        if replicaof is not None:
            argv += ["--replicaof", replicaof[0], str(replicaof[1])]
        self._start(name, argv, role="redis")
        self._urls[name] = f"redis://{place.address}:{port}"
        self._await_port(name, place.address, port)
        return place.address, port

    def _start_sentinel(
        self, binary: str, name: str, *, primary: tuple[str, int]
    ) -> tuple[str, int]:
        place = self._place(name)
        port = place.port("sentinel")
        data = self.run_dir / name
        data.mkdir(exist_ok=True)
        conf = data / "sentinel.conf"
        conf.write_text(
            _redis.sentinel_conf(
                address=place.address,
                port=port,
                data=data,
                primary=primary,
                sentinels=self.topology.redis_sentinels,
            )
        )
        self._start(name, [binary, str(conf), "--sentinel"], role="sentinel")
        self._urls[name] = f"redis://{place.address}:{port}"
        self._await_port(name, place.address, port)
        return place.address, port

    def _await_sentinels(self, sentinels: list[tuple[str, int]]) -> None:
        """Wait until every sentinel knows every replica and every other sentinel."""
        replicas = self.topology.redis_replicas
        self._await(
            self.topology.sentinel_names()[0],
            lambda t: _redis.await_settled(sentinels, replicas=replicas, timeout_s=t),
        )
