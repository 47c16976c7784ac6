"""A local webhook receiver: what a Slack- or Teams-style incoming webhook would get from edgeaudit.

Used by the tests (``Receiver`` in a thread, with the replies to give: a 500 then a 200 tests
the retries) and by ``make demo`` (``python -m lab.webhook --port N --log FILE``: each body is
appended to FILE as one JSON line and its ``text`` printed). Loopback only.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

MAX_BODY = 4 * 1024 * 1024


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POSTed JSON body and answers the given statuses."""

    def __init__(self, statuses: Iterable[int] = (), port: int = 0, log: Path | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses = list(statuses)  # replies in order; 200 once they are used up
        self.log = log
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(min(length, MAX_BODY))
                with owner.lock:
                    status = owner.statuses.pop(0) if owner.statuses else 200
                    if status == 200:
                        owner.record(json.loads(raw))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where to POST."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def record(self, body: dict[str, Any]) -> None:
        """Keep a delivered body (and log it when run as the demo's receiver)."""
        self.bodies.append(body)
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(body, ensure_ascii=False) + "\n")
            print(f"webhook received:\n{body.get('text', '')}", flush=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def main(argv: list[str] | None = None) -> int:
    """Run the receiver until SIGTERM or SIGINT."""
    p = argparse.ArgumentParser(prog="python -m lab.webhook", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log", type=Path, required=True, help="JSON lines of the bodies received")
    args = p.parse_args(argv)
    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with Receiver(port=args.port, log=args.log):
        print(f"webhook receiver on http://127.0.0.1:{args.port}/hook", file=sys.stderr, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
