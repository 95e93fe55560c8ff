"""The players' moving sample (loadtests/players.py): paging on from call to call.

The API here is a small HTTP server with refplat's paging contract (``limit``, opaque
``cursor``, ``next_cursor``); the real API's paging is tested in the refplat tiers.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.conftest import REPO_ROOT

SERVERS = [{"address": "127.0.0.1", "port": 30000 + i, "state": "Ready"} for i in range(7)]


def _load_players() -> ModuleType:
    """loadtests/players.py with Locust imported unpatched (see test_load_shapes)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCUST_SKIP_MONKEY_PATCH", "1")
        patch.syspath_prepend(str(REPO_ROOT / "loadtests"))
        for name in ("_harness_stats", "_slp", "_shapes", "players"):
            if name not in sys.modules:
                spec = importlib.util.spec_from_file_location(
                    name, REPO_ROOT / "loadtests" / f"{name}.py"
                )
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
    return sys.modules["players"]


players: Any = _load_players()


class PagedServers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)
        limit = int(query["limit"][0])
        start = int(query.get("cursor", ["0"])[0])
        items = SERVERS[start : start + limit]
        more = start + limit < len(SERVERS)
        body = json.dumps({"items": items, "next_cursor": str(start + limit) if more else None})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), PagedServers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def ports(listed: list[tuple[str, int]]) -> list[int]:
    return [port - 30000 for _, port in listed]


def test_each_listing_goes_on_where_the_last_stopped_and_wraps(api: str) -> None:
    lister = players.ServerLister(api_url=api, token="t", states=["Ready"], most=3)

    assert [[0, 1, 2], [3, 4, 5], [6, 0, 1]] == [ports(lister()) for _ in range(3)]


def test_fewer_servers_than_the_most_are_listed_once_each(api: str) -> None:
    lister = players.ServerLister(api_url=api, token="t", states=["Ready"], most=50)

    assert [list(range(7))] * 2 == [ports(lister()), ports(lister())]


def test_the_sample_is_drawn_from_each_listing_so_it_moves(api: str) -> None:
    lister = players.ServerLister(api_url=api, token="t", states=["Ready"], most=3)
    sample = players.TargetSample(lister=lister, size=2, refresh_s=0)  # re-list at every pick

    picked = [sample.pick().port - 30000 for _ in range(2)]

    assert (True, True) == (picked[0] in {0, 1, 2}, picked[1] in {3, 4, 5})


def test_a_failed_listing_keeps_the_sample() -> None:
    listings = iter([[("127.0.0.1", 30001)]])

    def lister() -> list[tuple[str, int]]:
        listed = next(listings, None)
        if listed is None:
            raise OSError("the API is down")
        return listed

    sample = players.TargetSample(lister=lister, size=5, refresh_s=0)  # re-list at every pick

    assert [30001, 30001, 30001] == [sample.pick().port for _ in range(3)]
