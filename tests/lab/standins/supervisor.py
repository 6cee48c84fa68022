"""A balena-supervisor stand-in: its HTTP API on 127.0.0.1:48484 inside one device namespace.

The lab has no balena engine to run the real supervisor in, so this answers the two endpoints the
probes read: ``/ping`` -> 200 ``OK`` and ``/v1/healthy`` -> 200 ``OK``, or 500 with ``--unhealthy``
(the seed's "supervisor endpoint answering 500"). Requests are logged in the supervisor's
journal style (``[api]     GET /v1/healthy 500 - 0.3 ms``) to the file given with ``--log``.
"""

from __future__ import annotations

import argparse
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--unhealthy", action="store_true")
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    log = open(args.log, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    log.write(
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        + " [info]    Supervisor v16.7.0 starting up...\n"
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            started = time.perf_counter()
            status = 404
            if self.path == "/ping":
                status = 200
            elif self.path == "/v1/healthy":
                status = 500 if args.unhealthy else 200
            body = b"OK" if status == 200 else b"Unhealthy" if status == 500 else b"Not Found"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            ms = (time.perf_counter() - started) * 1000
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            log.write(f"{stamp} [api]     GET {self.path} {status} - {ms:.3f} ms\n")
            if status == 500:
                log.write(f"{stamp} [error]   Healthcheck failed\n")

        def log_message(self, fmt: str, *a: object) -> None:
            return

    HTTPServer(("127.0.0.1", 48484), Handler).serve_forever()


if __name__ == "__main__":
    main()
