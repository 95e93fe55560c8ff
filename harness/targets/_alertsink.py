"""A webhook receiver for Alertmanager that appends every notified alert to a JSON-lines file.

The local target runs it as a supervised process beside Alertmanager (``python _alertsink.py
--listen HOST:PORT --out RUN_DIR/alerts.jsonl``), so the alerts that fired are on disk in the
run directory whether the harness that started the target is still running or not (``harness
up``). It imports only the standard library and is started by path, not as ``-m
harness.targets...``, so it starts in a few tens of milliseconds.

Each line is one alert of one notification: ``received_at`` (Unix seconds), ``status``
(``firing`` or ``resolved``), ``labels``, ``annotations``, ``starts_at``, ``ends_at`` (RFC 3339,
as Alertmanager sent them) and ``fingerprint``. ``harness.targets._alerts.fired_alerts`` folds
them into one record per alert.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY = 4 * 1024 * 1024  # Alertmanager sends one group per request: far below this


class _Handler(BaseHTTPRequestHandler):
    out: Path
    lock: threading.Lock

    def do_GET(self) -> None:
        self._answer(200 if self.path == "/healthz" else 404, b"ok\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self._answer(400, b"a webhook notification has a JSON body\n")
            return
        try:
            payload: Any = json.loads(self.rfile.read(length))
            alerts = payload["alerts"]
            lines = [_line(alert) for alert in alerts]
        except (ValueError, KeyError, TypeError) as exc:
            self._answer(400, f"not an Alertmanager webhook notification: {exc}\n".encode())
            return
        with self.lock, self.out.open("a", encoding="utf-8") as out:
            out.writelines(lines)
        self._answer(200, b"ok\n")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the file is the record; errors still reach stderr (the process log)."""


def _line(alert: dict[str, Any]) -> str:
    record = {
        "received_at": time.time(),
        "status": str(alert["status"]),
        "labels": dict(alert["labels"]),
        "annotations": dict(alert.get("annotations") or {}),
        "starts_at": str(alert["startsAt"]),
        "ends_at": str(alert.get("endsAt") or ""),
        "fingerprint": str(alert.get("fingerprint") or ""),
    }
    return json.dumps(record, sort_keys=True) + "\n"


def serve(address: str, port: int, out: Path) -> ThreadingHTTPServer:
    """Bind the receiver (not yet serving: call ``serve_forever``)."""
    handler = type("Handler", (_Handler,), {"out": out, "lock": threading.Lock()})
    return ThreadingHTTPServer((address, port), handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to listen on")
    parser.add_argument("--out", required=True, type=Path, help="the JSON-lines file to append to")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    server = serve(host, int(port), args.out)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
