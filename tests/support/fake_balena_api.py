"""A FAKE balenaCloud API for tests: balenaCloud itself cannot be reached from here.

It reproduces the wire format the real balena-sdk (17.x) uses in orch's flows, so the SDK runs
unmodified against it:

- ``GET /v7/application?$filter=(slug eq '<s>') or (uuid eq '<s>')&$select=...``
- ``GET /v7/application(<id>)?$select=...``
- ``GET /v7/application?$filter=is_directly_accessible_by__user/any(dau:1 eq 1)&$orderby=...``
- ``GET /v7/device?$filter=belongs_to__application eq <id>&$select=...&$orderby=...&$top=&$skip=``
- ``GET /actor/v1/whoami`` and ``GET /user/v1/whoami``

Bodies are ``{"d": [...]}``; every request needs ``Authorization: Bearer <token>`` (401 otherwise).
Anything else is logged in :attr:`FakeBalenaApi.unexpected` and answered 404 (or 400 for an
OData query it does not understand), so a test reveals requests it did not plan for.

Faults: :meth:`fail_next` (e.g. 429 with ``Retry-After`` or 500 for the next K requests) and
:meth:`stall_next` (accept the request and never answer, for timeout tests).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

DEVICE_COLUMNS = (
    "id",
    "uuid",
    "device_name",
    "is_online",
    "api_heartbeat_state",
    "is_connected_to_vpn",
    "last_connectivity_event",
    "ip_address",
    "mac_address",
    "public_address",
    "os_version",
    "os_variant",
    "supervisor_version",
    "overall_status",
    "belongs_to__application",
)
APP_COLUMNS = ("id", "uuid", "slug", "app_name")

_SLUG_FILTER = re.compile(r"^\(slug eq '([^']*)'\) or \(uuid eq '([^']*)'\)$")
_APP_FILTER = re.compile(r"^belongs_to__application eq (\d+)$")
_ACCESS_FILTER = "is_directly_accessible_by__user/any(dau:1 eq 1)"


def make_devices(count: int, *, per_site: int = 10, start_id: int = 1) -> list[dict[str, Any]]:
    """``count`` device records in the API's shape, grouped in sites of ``per_site`` devices.

    Every site shares a public address and a /24; the last device of each site is offline and off
    the VPN (so it needs ``hostvia``); every 7th device is on the VPN with an offline heartbeat.
    """
    records = []
    for index in range(count):
        site, slot = divmod(index, per_site)
        offline = slot == per_site - 1
        uuid = hashlib.md5(f"device-{start_id + index}".encode()).hexdigest()
        records.append(
            {
                "id": start_id + index,
                "uuid": uuid,
                "device_name": f"dev-{index:05d}",
                "is_online": not offline and index % 7 != 3,
                "api_heartbeat_state": "offline" if offline or index % 7 == 3 else "online",
                "is_connected_to_vpn": not offline,
                "last_connectivity_event": "2024-05-01T12:00:00.000Z",
                "ip_address": f"198.18.{site % 250}.{slot + 10} 198.19.{site % 250}.{slot + 10}",
                "mac_address": f"02:00:00:{site % 250:02x}:{slot:02x}:01",
                "public_address": f"203.0.113.{site % 250}",
                "os_version": "balenaOS 5.3.10",
                "os_variant": "prod",
                "supervisor_version": "16.4.6",
                "overall_status": "idle" if not offline else "offline",
            }
        )
    return records


@dataclass
class FakeBalenaApi:
    """The fake API server; start with :meth:`start` (or as a context manager)."""

    token: str = "test-token-0123456789"
    username: str = "gh_tester"
    fleets: dict[str, tuple[int, list[dict[str, Any]]]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    """Every request: (method, path, decoded query)."""
    unexpected: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[tuple[int, str | None]] = []
        self._stalls = 0
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- set-up ------------------------------------------------------------------------
    def add_fleet(
        self, slug: str, devices: list[dict[str, Any]], fleet_id: int | None = None
    ) -> int:
        """Register a fleet (slug ``org/name``) with its device records; returns its id."""
        fleet_id = fleet_id or 1000 + len(self.fleets)
        self.fleets[slug.lower()] = (fleet_id, devices)
        return fleet_id

    def fail_next(self, status: int, count: int = 1, retry_after: str | None = None) -> None:
        """Answer the next ``count`` requests with ``status`` (and a ``Retry-After`` header)."""
        with self._lock:
            self._faults.extend([(status, retry_after)] * count)

    def stall_next(self, count: int = 1) -> None:
        """Accept the next ``count`` requests and never answer them (until :meth:`stop`)."""
        with self._lock:
            self._stalls += count

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> FakeBalenaApi:
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeBalenaApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def device_pages(self) -> list[tuple[int, int]]:
        """(top, skip) of every device listing request, in order."""
        return [
            (int(q.get("$top", -1)), int(q.get("$skip", 0)))
            for method, path, q in self.requests
            if path == "/v7/device"
        ]

    # -- request handling (called from the server threads) -------------------------------
    def _take_fault(self) -> tuple[str, int | None, str | None]:
        with self._lock:
            if self._stalls:
                self._stalls -= 1
                return "stall", None, None
            if self._faults:
                status, retry_after = self._faults.pop(0)
                return "fail", status, retry_after
        return "ok", None, None

    def handle(self, method: str, path: str, query: dict[str, str], auth: str | None) -> Any:
        """Return (status, body) for one request."""
        self.requests.append((method, path, query))
        if auth != f"Bearer {self.token}":
            return 401, "Unauthorized"
        if method != "GET":
            self.unexpected.append(f"{method} {path}")
            return 405, "Method Not Allowed"
        if path in ("/actor/v1/whoami", "/user/v1/whoami"):
            return 200, {
                "id": 7,
                "actorType": "user",
                "actorTypeId": 70,
                "username": self.username,
                "email": f"{self.username}@example.com",
            }
        try:
            if path == "/v7/device":
                return 200, {"d": self._devices(query)}
            match = re.fullmatch(r"/v7/application(?:\((\d+)\))?", path)
            if match:
                return 200, {"d": self._applications(match.group(1), query)}
        except ValueError as exc:
            self.unexpected.append(f"{method} {path} {query}: {exc}")
            return 400, str(exc)
        self.unexpected.append(f"{method} {path}")
        return 404, "Not Found"

    def _applications(self, app_id: str | None, query: dict[str, str]) -> list[dict[str, Any]]:
        apps = [
            {
                "id": fid,
                "uuid": hashlib.md5(slug.encode()).hexdigest(),
                "slug": slug,
                "app_name": slug.split("/")[-1],
            }
            for slug, (fid, _) in self.fleets.items()
        ]
        filt = query.get("$filter")
        if app_id is not None:
            apps = [a for a in apps if a["id"] == int(app_id)]
        elif filt and (m := _SLUG_FILTER.match(filt)):
            apps = [a for a in apps if a["slug"] == m.group(1) or a["uuid"] == m.group(2)]
        elif filt and filt != _ACCESS_FILTER:
            raise ValueError(f"unsupported application $filter {filt!r}")
        return _shape(apps, query, APP_COLUMNS)

    def _devices(self, query: dict[str, str]) -> list[dict[str, Any]]:
        match = _APP_FILTER.match(query.get("$filter", ""))
        if not match:
            raise ValueError(f"unsupported device $filter {query.get('$filter')!r}")
        wanted = int(match.group(1))
        rows = next((devs for fid, devs in self.fleets.values() if fid == wanted), [])
        return _shape(rows, query, DEVICE_COLUMNS)


def _shape(rows: list[dict[str, Any]], query: dict[str, str], columns: tuple[str, ...]) -> list:
    """Apply ``$orderby``, ``$skip``, ``$top`` and ``$select`` like the API does."""
    if "$orderby" in query:
        name, _, direction = query["$orderby"].partition(" ")
        if name not in columns:
            raise ValueError(f"unknown $orderby field {name!r}")
        rows = sorted(
            rows,
            key=lambda r: r["id"] if name == "id" else str(r.get(name) or ""),
            reverse=direction.strip() == "desc",
        )
    skip = int(query.get("$skip", 0))
    rows = rows[skip:]
    if "$top" in query:
        rows = rows[: int(query["$top"])]
    if "$select" in query:
        fields = query["$select"].split(",")
        unknown = [f for f in fields if f not in columns]
        if unknown:
            raise ValueError(f"unknown $select fields {unknown}")
        rows = [{f: r.get(f) for f in fields} for r in rows]
    return rows


class _Handler(BaseHTTPRequestHandler):
    api: FakeBalenaApi
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        kind, status, retry_after = self.api._take_fault()
        if kind == "stall":
            self.api.requests.append((method, unquote(parts.path), query))
            self.api._release.wait(120)
            self.close_connection = True
            return
        if kind == "fail":
            self.api.requests.append((method, unquote(parts.path), query))
            self._send(status or 500, {"error": "injected fault"}, retry_after)
            return
        status, body = self.api.handle(
            method, unquote(parts.path), query, self.headers.get("Authorization")
        )
        self._send(status, body)

    def _send(self, status: int, body: Any, retry_after: str | None = None) -> None:
        data = (json.dumps(body) if not isinstance(body, str) else body).encode()
        self.send_response(status)
        self.send_header(
            "Content-Type", "application/json" if not isinstance(body, str) else "text/plain"
        )
        self.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        """Silence the default stderr access log; requests are in ``api.requests``."""
