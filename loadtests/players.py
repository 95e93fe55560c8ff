"""Players: Server List Ping status and ping/pong against the platform's game servers.

Runs under the harness (which passes every parameter) and with plain upstream Locust against a
target brought up with ``harness up``:

    locust -f loadtests/players.py --headless -u 20 -r 10 -t 30s

Which servers: ``--slp-targets HOST:PORT,...`` names them outright; otherwise the target file
(``--harness-target-file``, default ``$HARNESS_TARGET_FILE`` or ``.harness/target.json``) gives
the API and the tenant token, and the tenant's servers in ``--slp-states`` (default Allocated)
are listed through the API every ``--slp-refresh-s`` seconds; players query a random sample of
``--slp-sample`` of them, drawn afresh at each listing (a moving sample).

Each query is one Locust request of type ``SLP`` named ``status`` or ``ping``; a failure's
error names its kind (``connect``, ``timeout``, ``closed``, ``protocol``; see ``_slp.py``), so
each kind is counted under its own name. ``--tags ping`` (or ``status``) runs one task only.
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

import _harness_stats  # noqa: F401  (registers --harness-stats-file)
import _slp
import _target  # registers --harness-target-file, --tenant-token-file
from _shapes import HarnessShape  # noqa: F401  (registers --shape; Locust finds it here)
from locust import User, events, tag, task

log = logging.getLogger(__name__)

PAGE_LIMIT = 500  # the API's largest page
API_TIMEOUT_S = 10.0


OPTIONS: list[tuple[str, type, Any, str]] = [
    ("--slp-targets", str, "", "HOST:PORT,... to query instead of the servers the API lists"),
    ("--slp-states", str, "Allocated", "server states to query, comma-separated (Allocated,Ready)"),
    ("--slp-sample", int, 100, "servers in the moving sample"),
    ("--slp-list-max", int, 2000, "servers listed per state at each refresh, to sample from"),
    ("--slp-refresh-s", float, 10.0, "seconds between listings of the servers"),
    ("--slp-timeout-s", float, 2.0, "seconds one query (connect, request, reply) may take"),
    ("--slp-wait-s", float, 1.0, "mean seconds a player waits between queries (0: none)"),
]  # fmt: skip


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    for flag, kind, default, text in OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=text)


class ServerLister:
    """Lists the tenant's servers in some states through the API, as resolvable addresses.

    Each call lists at most ``most`` servers per state, going on from where the previous call
    stopped (and round to the start at the end), so that over successive calls every server
    gets listed, however many more than ``most`` there are.
    """

    def __init__(self, *, api_url: str, token: str, states: Sequence[str], most: int) -> None:
        self._api = api_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._states = states
        self._most = most
        self._resume: dict[str, str | None] = {}  # state -> cursor to go on from

    def __call__(self) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        for state in self._states:
            found += self._list(state)
        return found

    def _list(self, state: str) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        cursor = self._resume.get(state)
        wrapped = cursor is None
        while len(found) < self._most:
            items, cursor = self._page(state, cursor)
            found += [(s["address"], s["port"]) for s in items if s.get("port")]
            if cursor is None:
                if wrapped:
                    break
                wrapped = True  # from the start again, up to where this call began
        self._resume[state] = cursor
        return list(dict.fromkeys(found))[: self._most]

    def _page(self, state: str, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        query = {"state": state, "limit": str(min(PAGE_LIMIT, self._most))}
        if cursor:
            query["cursor"] = cursor
        url = f"{self._api}/v1/servers?{urllib.parse.urlencode(query)}"
        req = urllib.request.Request(url, headers=self._headers)
        with urllib.request.urlopen(req, timeout=API_TIMEOUT_S) as resp:
            body = json.loads(resp.read())
        return body["items"], body.get("next_cursor") or None


class TargetSample:
    """The servers players pick from: a fixed list, or a moving sample of listed servers.

    The first player to find the sample stale re-lists (the others keep the old sample
    meanwhile); a failed listing keeps the old sample and is logged, not counted as a request.
    """

    def __init__(
        self,
        *,
        fixed: Sequence[_slp.Target] = (),
        lister: Callable[[], list[tuple[str, int]]] | None = None,
        size: int = 100,
        refresh_s: float = 10.0,
    ) -> None:
        self._targets = list(fixed)
        self._lister = lister
        self._size = size
        self._refresh_s = refresh_s
        self._listed_at = -float("inf")
        self._listing = False
        self._warned = False

    def pick(self) -> _slp.Target | None:
        stale = time.monotonic() - self._listed_at >= self._refresh_s
        if self._lister is not None and stale and not self._listing:
            self._refresh(self._lister)
        return random.choice(self._targets) if self._targets else None

    def _refresh(self, lister: Callable[[], list[tuple[str, int]]]) -> None:
        self._listing = True
        try:
            listed = lister()
            chosen = random.sample(listed, min(self._size, len(listed)))
            self._targets = [_slp.resolve(host, port) for host, port in chosen]
            if not self._targets and not self._warned:
                log.warning("the API lists no servers to query yet; players wait for some")
            self._warned = not self._targets
        except (OSError, ValueError, KeyError, _slp.SlpError) as exc:
            log.warning("listing the servers failed (keeping %d): %s", len(self._targets), exc)
        finally:
            self._listed_at = time.monotonic()
            self._listing = False


def _lister(options: Any) -> ServerLister:
    target = _target.read(options, instead="--slp-targets HOST:PORT,...")
    states = [s.strip() for s in options.slp_states.split(",") if s.strip()]
    return ServerLister(
        api_url=target["api_url"],
        token=_target.tenant_token(options, target),
        states=states,
        most=options.slp_list_max,
    )


def _fixed(text: str) -> list[_slp.Target]:
    try:
        return [_slp.parse_target(part) for part in text.split(",") if part.strip()]
    except (ValueError, _slp.SlpError) as exc:
        raise SystemExit(f"--slp-targets: {exc}; write HOST:PORT,HOST:PORT") from None


@events.init.add_listener
def _configure(environment: Any, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:  # imported by a test, not started by Locust's command line
        return
    for name in ("slp_sample", "slp_list_max"):
        if getattr(options, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
    if options.slp_targets:
        sample = TargetSample(fixed=_fixed(options.slp_targets))
    else:
        sample = TargetSample(
            lister=_lister(options), size=options.slp_sample, refresh_s=options.slp_refresh_s
        )
    environment.slp_sample = sample
    environment.slp_timeout_s = options.slp_timeout_s
    environment.slp_wait_s = max(0.0, options.slp_wait_s)


class Player(User):
    """A player's launcher refreshing its server list: status and ping of random servers."""

    def wait_time(self) -> float:
        mean: float = getattr(self.environment, "slp_wait_s", 1.0)
        return random.uniform(0.5 * mean, 1.5 * mean) if mean else 0.0

    @tag("status")
    @task(1)
    def status(self) -> None:
        self._query("status", _slp.status)

    @tag("ping")
    @task(3)
    def ping(self) -> None:
        self._query("ping", _slp.ping)

    def _query(self, name: str, exchange: Callable[..., _slp.Status | _slp.Pong]) -> None:
        env = self.environment
        target = env.slp_sample.pick()
        if target is None:
            time.sleep(1.0)  # nothing to query yet; the sample is re-listed meanwhile
            return
        started = time.perf_counter()
        try:
            reply = exchange(target, timeout_s=env.slp_timeout_s)
        except _slp.SlpError as exc:
            length, error = 0, exc
        else:
            length, error = reply.bytes_read, None
        env.events.request.fire(
            request_type="SLP",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=error,
        )
