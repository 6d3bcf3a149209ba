"""HTTP servers on 127.0.0.1 for the tests' stand-ins and misbehaving endpoints: a quiet JSON-capable
handler base, and a server that runs in a thread from `with` to the end of the block."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output clean and speaks JSON when asked."""

    def log_message(self, *args) -> None:
        pass

    def read_json(self):
        """The request's JSON body; None when it has none."""
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def send_json(self, status: int, doc) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class LoopbackServer:
    """A ThreadingHTTPServer bound to a free port on 127.0.0.1 at once (so `url` is known before it runs),
    serving from `start()` (or `with`) until `stop()` shuts it down, closes the socket and joins its thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port: int = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
