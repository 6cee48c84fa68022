"""HTTPS stand-ins for balenaCloud's API, Cloudlink, registry and delta (lab cloud namespace).

Usage: ``python https_endpoints.py ROLE:IP:PORT:CERT:KEY ...``. Each listener answers like the
real service does to the probes: api ``/ping`` -> 200 ``OK`` and ``/connectivity-check`` -> 204
with a ``Date`` header; cloudlink ``/ping`` -> 200 ``OK``; registry ``/v2/`` -> 401 with
``WWW-Authenticate``; anything else -> 404. ``ROLE`` ``plain`` serves HTTP without TLS.
"""

from __future__ import annotations

import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def handler_for(role: str) -> type[BaseHTTPRequestHandler]:
    """A request handler answering as service ``role``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            path = self.path.split("?", 1)[0]
            if path == "/ping" and role in ("api", "cloudlink", "delta"):
                self._answer(200, b"OK")
            elif path == "/connectivity-check" and role == "api":
                self._answer(204, b"")
            elif path.startswith("/v2/") and role == "registry":
                self._answer(
                    401,
                    b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                    {"WWW-Authenticate": 'Bearer realm="https://api.lab.test/auth/v1/token"'},
                )
            else:
                self._answer(404, b"Not Found")

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if status != 204:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and status != 204:
                self.wfile.write(body)

        def log_message(self, fmt: str, *args: object) -> None:
            sys.stderr.write(f"{role} {self.address_string()} {fmt % args}\n")

    return Handler


def serve(spec: str) -> ThreadingHTTPServer:
    """Start one listener from ``ROLE:IP:PORT:CERT:KEY`` in a thread."""
    role, ip, port, cert, key = spec.split(":", 4)
    server = ThreadingHTTPServer((ip, int(port)), handler_for(role))
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    for item in sys.argv[1:]:
        serve(item)
    print("listening", flush=True)
    threading.Event().wait()
