"""balenaCloud / openBalena fleet source, built on the real balena-sdk.

The SDK builds the OData queries and interprets the results; orch supplies what it lacks:

- in-memory settings (``data_directory: False``), so the token is never written to
  ``~/.balena/balena.cfg`` and no file under HOME is read or created;
- an API base other than balenaCloud's (openBalena, tests): ``api_endpoint`` plus ``pine.api_prefix``;
- an HTTP transport with a timeout on every call, bounded retries with exponential backoff on 429
  (honouring ``Retry-After``) and 5xx, and errors translated into :mod:`orchestrator.errors`.
  It is installed through pine's ``_request`` hook, the method the SDK's own client implements;
- paging with ``$top``/``$skip`` (the SDK fetches a whole fleet in one response otherwise).

Everything here is synchronous (``requests``): async callers run ``list_devices``, ``list_fleets``
and ``whoami_username`` in a worker thread (``asyncio.to_thread``) to keep the event loop free.
The token never appears in a message, a log line or a ``repr``.
"""

from __future__ import annotations

import email.utils
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from balena import Balena
from balena import exceptions as balena_exceptions

from orchestrator.errors import (
    AuthenticationError,
    ConfigError,
    FleetNotFoundError,
    FleetSourceError,
)
from orchestrator.models import Device

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.balena-cloud.com/"
DEVICE_FIELDS: tuple[str, ...] = (
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
)
"""The device fields orch selects (nothing else is transferred)."""

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class BalenaSettings:
    """How to reach the balena API. The token is held in memory only and masked in ``repr``."""

    api_url: str = DEFAULT_API_URL
    token: str | None = field(default=None, repr=False)
    ssh_host: str = "ssh.balena-devices.com"
    ssh_user: str | None = None
    timeout_s: float = 30.0
    retries: int = 4
    page_size: int = 500
    backoff_s: float = 0.5
    """First retry delay; doubled on every further retry (a ``Retry-After`` header wins)."""

    def __repr__(self) -> str:
        token = "'***'" if self.token else "None"
        return (
            f"BalenaSettings(api_url={self.api_url!r}, token={token}, ssh_host={self.ssh_host!r}, "
            f"ssh_user={self.ssh_user!r}, timeout_s={self.timeout_s}, retries={self.retries}, "
            f"page_size={self.page_size})"
        )

    @classmethod
    def from_sources(
        cls, section: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> BalenaSettings:
        """Settings from a config ``[balena]`` section, overridden by the environment.

        ``ORCH_BALENA_API_URL`` overrides ``api_url``; ``BALENA_API_KEY`` overrides ``api_key``
        (or ``token``). Other keys: ``ssh_host``, ``ssh_user``, ``timeout_s``, ``retries``, ``page_size``.
        """
        section = dict(section or {})
        env = os.environ if environ is None else environ
        try:
            return cls(
                api_url=_normalise_base(
                    env.get("ORCH_BALENA_API_URL") or section.get("api_url") or DEFAULT_API_URL
                ),
                token=env.get("BALENA_API_KEY") or section.get("api_key") or section.get("token"),
                ssh_host=str(section.get("ssh_host") or "ssh.balena-devices.com"),
                ssh_user=section.get("ssh_user") or None,
                timeout_s=float(section.get("timeout_s", 30.0)),
                retries=int(section.get("retries", 4)),
                page_size=int(section.get("page_size", 500)),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid [balena] setting: {exc}") from None


def _normalise_base(url: str) -> str:
    """``http://host:port`` -> ``http://host:port/``; rejects anything that is not http(s)."""
    url = str(url).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"invalid balena API URL {url!r}: expected http(s)://host[:port]/")
    return url if url.endswith("/") else url + "/"


class _BearerAuth(requests.auth.AuthBase):
    """Adds the bearer token; also stops requests from substituting ~/.netrc credentials."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


class _Transport:
    """One requests session with timeout, retries, backoff and error translation."""

    def __init__(self, settings: BalenaSettings) -> None:
        if not settings.token:
            raise AuthenticationError(
                "no balena API token: set BALENA_API_KEY or [balena] api_key in the config"
            )
        self._settings = settings
        self._base = _normalise_base(settings.api_url)
        self._session = requests.Session()
        self._session.auth = _BearerAuth(settings.token)
        self._session.headers["X-Balena-Client"] = "orch"

    def get_json(self, path: str) -> Any:
        """GET ``path`` relative to the API base and return the decoded JSON."""
        return self.request("GET", urljoin(self._base, path))

    def request(self, method: str, url: str, body: Any | None = None) -> Any:
        """Pine's ``_request`` contract: return decoded JSON, raise on failure."""
        where = _strip_query(url)
        attempt = 0
        while True:
            try:
                response = self._session.request(
                    method, url, json=body, timeout=self._settings.timeout_s
                )
            except requests.Timeout:
                raise FleetSourceError(
                    f"balena API at {self._base} did not answer within "
                    f"{self._settings.timeout_s:g} s ({method} {where})"
                ) from None
            except requests.RequestException as exc:
                raise FleetSourceError(
                    f"balena API at {self._base} is unreachable ({type(exc).__name__}): "
                    "check [balena] api_url / ORCH_BALENA_API_URL and the network"
                ) from None
            status = response.status_code
            if status in RETRY_STATUSES and attempt < self._settings.retries:
                delay = self._retry_delay(response, attempt)
                log.info("balena API %s %s -> %d, retrying in %.1f s", method, where, status, delay)
                time.sleep(delay)
                attempt += 1
                continue
            return self._decode(response, method, where)

    def _retry_delay(self, response: requests.Response, attempt: int) -> float:
        delay = self._settings.backoff_s * (2**attempt)
        header = response.headers.get("Retry-After")
        if header:
            hinted = _parse_retry_after(header)
            if hinted is not None:
                delay = hinted
        return min(max(delay, 0.0), MAX_BACKOFF_S)

    def _decode(self, response: requests.Response, method: str, where: str) -> Any:
        status = response.status_code
        if status == 401:
            raise AuthenticationError("balena API rejected the token (401): check BALENA_API_KEY")
        if status == 403:
            raise AuthenticationError(
                f"balena API refused access (403) to {where}: the token lacks permission"
            )
        if status == 429:
            raise FleetSourceError(
                f"balena API at {self._base} kept rate-limiting (429) after "
                f"{self._settings.retries} retries: try again later"
            )
        if not response.ok:
            raise FleetSourceError(
                f"balena API at {self._base} answered HTTP {status} to {method} {where}"
            )
        try:
            return response.json()
        except ValueError:
            raise FleetSourceError(
                f"balena API at {self._base} returned a non-JSON answer to {method} {where}"
            ) from None


def _strip_query(url: str) -> str:
    parts = urlsplit(url)
    return parts.path or "/"


def _parse_retry_after(value: str) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _make_sdk(settings: BalenaSettings) -> tuple[Balena, _Transport]:
    """A balena-sdk instance with in-memory settings, our API base and our transport."""
    transport = _Transport(settings)
    base = _normalise_base(settings.api_url)
    sdk = Balena({"data_directory": False, "retry_rate_limited_request": False})
    sdk.settings.set("api_endpoint", base)
    sdk.pine.api_prefix = base + "v7/"
    sdk.pine._request = transport.request  # pine's transport hook; see the module docstring
    sdk.auth.login_with_token(settings.token or "")
    return sdk, transport


def _translate_sdk_error(exc: Exception, settings: BalenaSettings, fleet: str) -> Exception:
    if isinstance(exc, balena_exceptions.ApplicationNotFound):
        return FleetNotFoundError(
            f"fleet {fleet!r} not found at {settings.api_url} (or not visible to this token): "
            "check the slug (org/name), uuid or numeric id"
        )
    if isinstance(exc, balena_exceptions.AmbiguousApplication):
        return FleetSourceError(f"fleet {fleet!r} is ambiguous: use the full slug org/name or id")
    if isinstance(exc, balena_exceptions.RequestError):
        return FleetSourceError(f"balena API at {settings.api_url} failed: {exc.status_code}")
    return FleetSourceError(f"balena API at {settings.api_url} failed: {type(exc).__name__}")


def _split(value: Any) -> tuple[str, ...]:
    return tuple(str(value).split()) if value else ()


def device_from_api(record: Mapping[str, Any], fleet_slug: str) -> Device:
    """Map one API device record (the ``DEVICE_FIELDS`` selection) to a :class:`Device`."""
    uuid = str(record["uuid"])
    os_version = record.get("os_version")
    if os_version and record.get("os_variant"):
        os_version = f"{os_version} ({record['os_variant']})"
    return Device(
        uuid=uuid,
        name=str(record.get("device_name") or uuid[:7]),
        public_address=record.get("public_address") or None,
        local_ips=_split(record.get("ip_address")),
        macs=_split(record.get("mac_address")),
        is_online=record.get("is_online"),
        is_connected_to_vpn=record.get("is_connected_to_vpn"),
        heartbeat=record.get("api_heartbeat_state"),
        os_version=os_version or None,
        supervisor_version=record.get("supervisor_version") or None,
        last_connectivity_event=record.get("last_connectivity_event") or None,
        fleet=fleet_slug,
    )


class BalenaFleetSource:
    """Lists one balena fleet (slug, uuid or numeric id). Synchronous: run it in a thread."""

    def __init__(self, settings: BalenaSettings, fleet: str) -> None:
        self._settings = settings
        self._fleet = str(fleet)

    @property
    def label(self) -> str:
        return f"balena:{self._fleet}"

    def list_devices(self) -> list[Device]:
        """Every device of the fleet, fetched page by page; raises ``FleetSourceError``."""
        sdk, _ = _make_sdk(self._settings)
        key: str | int = int(self._fleet) if self._fleet.isdigit() else self._fleet
        try:
            app = sdk.models.application.get(key, {"$select": ["id", "slug"]})
            return self._pages(sdk, int(app["id"]), str(app.get("slug") or self._fleet))
        except balena_exceptions.BalenaException as exc:
            raise _translate_sdk_error(exc, self._settings, self._fleet) from None

    def _pages(self, sdk: Balena, app_id: int, slug: str) -> list[Device]:
        size = max(1, self._settings.page_size)
        devices: dict[str, Device] = {}
        skip = 0
        while True:
            page = sdk.models.device.get_all(
                {
                    "$filter": {"belongs_to__application": app_id},
                    "$select": list(DEVICE_FIELDS),
                    "$orderby": "id asc",
                    "$top": size,
                    "$skip": skip,
                }
            )
            for record in page:
                device = device_from_api(record, slug)
                devices.setdefault(device.uuid, device)
            log.debug("balena fleet %s: page at %d gave %d devices", slug, skip, len(page))
            if len(page) < size:
                return list(devices.values())
            skip += size


def list_fleets(settings: BalenaSettings) -> list[str]:
    """Slugs of every fleet the token can see directly (for ``--all-fleets``)."""
    sdk, _ = _make_sdk(settings)
    try:
        apps = sdk.models.application.get_all({"$select": ["id", "slug"]})
    except balena_exceptions.BalenaException as exc:
        raise _translate_sdk_error(exc, settings, "*") from None
    return sorted({str(app["slug"]) for app in apps if app.get("slug")})


def whoami_username(settings: BalenaSettings) -> str:
    """The balena username for the SSH proxy: ``settings.ssh_user`` or the API's whoami.

    The SDK's own whoami has no timeout and reports every failure as ``NotLoggedIn``, so the
    request goes through orch's transport (``GET /actor/v1/whoami``).
    """
    if settings.ssh_user:
        return settings.ssh_user
    _, transport = _make_sdk(settings)
    actor = transport.get_json("actor/v1/whoami")
    if not isinstance(actor, dict):
        raise FleetSourceError(f"balena API at {settings.api_url} gave a malformed whoami answer")
    if actor.get("actorType") not in (None, "user") or not actor.get("username"):
        raise FleetSourceError(
            f"the balena token belongs to a {actor.get('actorType', 'non-user')} actor, not a user: "
            "use a user API key or set [balena] ssh_user"
        )
    return str(actor["username"])
