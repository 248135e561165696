"""Who may call the service: API keys, the Host allow-list, and the open routes.

With ``IMGSRV_API_KEYS`` (``name:secret,...``) or ``IMGSRV_API_KEYS_FILE`` (one ``name:secret``
a line; re-read on SIGHUP, so keys rotate without a restart) every route but the open ones
needs ``Authorization: Bearer SECRET`` or ``X-API-Key: SECRET``. Secrets are compared in
constant time, and only the key's name is ever logged or recorded.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import BadHost, Unauthorized
from .errors import request_error_response
from .middleware import route_path

log = logging.getLogger("imgsrv.access")

#: routes answered without a key: liveness and the API's own description
OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
OPEN_PREFIXES = ("/static-offline-docs/",)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class KeysError(ValueError):
    """The keys' configuration cannot be read."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    secret: bytes


def parse_keys(text: str, where: str) -> list[ApiKey]:
    """``name:secret`` pairs, separated by commas or new lines; a line starting with ``#`` is a
    comment (commas in it included)."""
    keys: list[ApiKey] = []
    entries = (part.strip() for line in text.splitlines() if not line.lstrip().startswith("#")
               for part in line.split(","))
    for n, item in enumerate(entries):
        if not item:
            continue
        name, sep, secret = item.partition(":")
        name, secret = name.strip(), secret.strip()
        if not sep or not name or not secret:
            raise KeysError(f"{where}: entry {n + 1} is not name:secret")
        if any(k.name == name for k in keys):
            raise KeysError(f"{where}: the key name {name!r} is given twice")
        keys.append(ApiKey(name, secret.encode()))
    return keys


class Keys:
    """The API keys in force; empty: the service is open (loopback only, see cli.serve)."""

    def __init__(self, inline: str | None, file: Path | None, admins: str | None = None):
        self.inline, self.file = inline, file
        self.admins = frozenset(a.strip() for a in (admins or "").split(",") if a.strip())
        self._lock = threading.Lock()
        self._keys: tuple[ApiKey, ...] = ()
        self.reload()

    @property
    def enabled(self) -> bool:
        return bool(self.inline or self.file)

    def reload(self) -> int:
        """Read the keys again (the file may have changed); how many are in force."""
        keys = parse_keys(self.inline or "", "IMGSRV_API_KEYS")
        if self.file is not None:
            try:
                text = Path(self.file).read_text()
            except OSError as exc:
                raise KeysError(f"IMGSRV_API_KEYS_FILE {self.file}: {exc.strerror}") from None
            for key in parse_keys(text, f"IMGSRV_API_KEYS_FILE {self.file}"):
                if any(k.name == key.name for k in keys):
                    raise KeysError(f"the key name {key.name!r} is given twice")
                keys.append(key)
        if self.enabled and not keys and not self._keys:
            raise KeysError("IMGSRV_API_KEYS / IMGSRV_API_KEYS_FILE hold no key")
        with self._lock:  # a file emptied since the start revokes every key: every request is then a 401
            self._keys = tuple(keys)
        return len(keys)

    def identify(self, secret: str) -> str | None:
        """The name of the key whose secret this is; every key is compared, in constant time."""
        given = secret.encode()
        found = None
        with self._lock:
            keys = self._keys
        for key in keys:
            if hmac.compare_digest(given, key.secret):
                found = key.name
        return found

    def is_admin(self, name: str | None) -> bool:
        return not self.enabled or (name is not None and name in self.admins)


def credentials(headers: dict[bytes, bytes]) -> tuple[str | None, str | None]:
    """(the secret a request sends, what is wrong with how it sends it)."""
    auth = headers.get(b"authorization")
    if auth is not None:
        scheme, _sp, value = auth.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None, "the Authorization header must be 'Bearer SECRET'"
        return value.strip(), None
    key = headers.get(b"x-api-key")
    if key is not None:
        return (key.decode("latin-1").strip() or None), (None if key.strip() else "the X-API-Key header is empty")
    return None, "this route needs an API key: Authorization: Bearer SECRET, or X-API-Key: SECRET"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Authenticate:
    """401 (with ``WWW-Authenticate: Bearer``) for a request without a right key, before its
    body is read; the key's name goes into the scope (``state.key``) for the log, the metrics
    and the jobs."""

    def __init__(self, app: ASGIApp, keys: Keys):
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys.enabled:
            await self.app(scope, receive, send)
            return
        path = route_path(scope)  # as the routes see it, under a proxy's root_path too
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        secret, problem = credentials(dict(scope.get("headers", [])))
        name = self.keys.identify(secret) if secret else None
        if name is None:
            await request_error_response(Unauthorized(problem or "the API key is not valid"))(scope, receive, send)
            return
        scope.setdefault("state", {})["key"] = name
        await self.app(scope, receive, send)


class TrustedHosts:
    """400 for a request whose ``Host`` is not one the service answers to (DNS rebinding: a
    web page cannot reach a service on 127.0.0.1 under its own host name)."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]):
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "*" not in self.allowed:
            hosts = [v for k, v in scope.get("headers", []) if k == b"host"]
            host = hosts[0].decode("latin-1").lower() if len(hosts) == 1 else ""  # two: which would be meant?
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.strip("[]") not in self.allowed and name not in self.allowed:
                await request_error_response(BadHost(
                    f"the Host header {host!r} is not a name this service answers to (IMGSRV_ALLOWED_HOSTS)"))(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


def declare_security(schema: dict, keys: Keys) -> None:
    """With keys, an OpenAPI schema declares both ways of sending one, so the Authorize button
    of /docs works; the open routes need none."""
    if keys.enabled:
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer SECRET"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
        schema["security"] = [{"bearer": []}, {"apiKey": []}]
        for path, methods in schema.get("paths", {}).items():
            for operation in methods.values():
                if path in OPEN_PATHS:
                    operation["security"] = []
                else:
                    operation.setdefault("responses", {}).setdefault("401", {
                        "description": "no API key, a malformed one or a wrong one (WWW-Authenticate: Bearer)"})
