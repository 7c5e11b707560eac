"""Who may do what (CONTRACT section 9): API keys, roles and one access rule per route.

Keys come from ``OPTIMIZER_API_KEYS="NAME:ROLE:SECRET,..."`` and from the database (added with
``python -m api keys add``, kept as SHA-256 digests only). A request sends its key as
``X-API-Key: SECRET`` or ``Authorization: Bearer SECRET``.

Roles, each including the one before: ``reader`` (every GET and HEAD), ``analyst`` (may also
create runs, datasets, batches and share links, and cancel or delete what its own key made),
``admin`` (may delete anything; keys are managed with the ``python -m api keys`` command).

With no key configured anywhere, only loopback clients are served (as the local admin,
named ``local``); ``python -m api`` refuses to listen on another address then.

Every route declares exactly one :class:`Rule` (``PUBLIC``, ``READ``, ``WRITE``, ``ADMIN`` or
``SHARED``); tests/test_access.py walks the app's route table so a route without one fails.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .problems import Problem

log = logging.getLogger("api.access")

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
LOCAL = "local"  # the principal of a loopback client when no key is configured
MIN_SECRET_CHARS = 16


class Role(enum.IntEnum):
    reader = 1
    analyst = 2
    admin = 3


@dataclass(frozen=True)
class Principal:
    """Who sent a request: a key's name and role."""

    name: str
    role: Role

    def may_change(self, owner: str | None) -> bool:
        """Analysts change (cancel, delete, revoke) what their own key made; admins anything."""
        return self.role >= Role.admin or (self.role >= Role.analyst and owner == self.name)


@dataclass(frozen=True)
class Key:
    name: str
    role: Role
    digest: str  # SHA-256 of the secret, hex
    source: str  # "env" or "database"


def digest(secret: str) -> str:
    """SHA-256 of a key's secret. A fast hash is enough here, unlike for passwords: generated
    secrets carry 256 random bits (configured ones should be as long; the server warns when
    they are short), so a stolen digest leaves nothing to guess offline, and the check of
    every request must stay far under a millisecond (a password hash takes ~100 ms)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_role(text: str) -> Role:
    try:
        return Role[text.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown role {text.strip()!r} (reader, analyst or admin)") from None


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValueError(f"key name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return name


def parse_env_keys(text: str) -> list[Key]:
    """``NAME:ROLE:SECRET,...`` (secrets may hold ':' but not ','); ValueError naming the
    entry that is wrong. The secret itself never appears in a message."""
    keys: list[Key] = []
    for i, entry in enumerate(e.strip() for e in text.split(",")):
        if not entry:
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3 or not parts[2].strip():
            raise ValueError(f"OPTIMIZER_API_KEYS entry {i + 1} is not NAME:ROLE:SECRET")
        name, role, secret = (p.strip() for p in parts)
        try:
            key = Key(check_name(name), parse_role(role), digest(secret), "env")
        except ValueError as exc:
            raise ValueError(f"OPTIMIZER_API_KEYS entry {i + 1}: {exc}") from None
        if len(secret) < MIN_SECRET_CHARS:
            log.warning("OPTIMIZER_API_KEYS: the secret of key %r has %d characters; use a "
                        "random one of %d or more (python -m api keys new-secret)", name,
                        len(secret), MIN_SECRET_CHARS)
        if any(k.name == key.name for k in keys):
            raise ValueError(f"OPTIMIZER_API_KEYS names {name!r} twice")
        keys.append(key)
    return keys


class Keyring:
    """The keys a server accepts: those of the settings and those of the database (re-read
    every ``refresh_s`` by the app's background task; a revocation through this process
    takes effect at once)."""

    def __init__(self, env_keys: Iterable[Key], refresh_s: float = 5.0) -> None:
        self.env_keys = list(env_keys)
        self.refresh_s = refresh_s
        self._db_keys: list[Key] = []
        self._lock = threading.Lock()
        self.loaded_at = 0.0

    @property
    def keys(self) -> list[Key]:
        return self.env_keys + self._db_keys

    @property
    def configured(self) -> bool:
        return bool(self.env_keys or self._db_keys)

    def set_db_keys(self, keys: Iterable[Key]) -> None:
        with self._lock:
            self._db_keys = list(keys)
            self.loaded_at = time.monotonic()

    def authenticate(self, secret: str) -> Principal | None:
        """The key whose secret this is, or None. Compares digests in constant time against
        every key (no early exit), so timing tells nothing about which digest was near."""
        d = digest(secret)
        found: Key | None = None
        for k in self.keys:
            if hmac.compare_digest(d, k.digest) and found is None:
                found = k
        return None if found is None else Principal(found.name, found.role)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


# The two ways a key may be sent, declared as OpenAPI security schemes so /docs can send them.
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False,
                        description="a key configured in OPTIMIZER_API_KEYS or stored with "
                                    "`python -m api keys add`")
_bearer = HTTPBearer(auto_error=False, description="the same key as a bearer token")
UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="optimizer", ApiKey header="X-API-Key"'}


class Rule:
    """The access rule of a route, a FastAPI dependency answering the request's
    :class:`Principal` (or a 401/403 problem). ``level``: ``public`` (anyone), ``read``,
    ``write`` (analyst), ``admin``; ``shared`` routes are opened by a share link's signature
    (checked by the route) and accept no key."""

    def __init__(self, level: str) -> None:
        if level not in ("public", "read", "write", "admin", "shared"):
            raise ValueError(level)
        self.level = level
        self.role = {"read": Role.reader, "write": Role.analyst, "admin": Role.admin}.get(level)

    def __repr__(self) -> str:
        return f"Rule({self.level!r})"

    async def __call__(self, request: Request,
                       x_api_key: Annotated[str | None, Depends(_api_key)] = None,
                       bearer: Annotated[HTTPAuthorizationCredentials | None,
                                         Depends(_bearer)] = None) -> Principal:
        keyring: Keyring = request.app.state.keyring
        if not keyring.configured:
            client = request.client.host if request.client else None
            if not is_loopback(client):
                raise Problem(403, "no API keys are configured, so this server serves "
                              "loopback clients only; configure OPTIMIZER_API_KEYS or add a "
                              "key with `python -m api keys add`")
            principal = Principal(LOCAL, Role.admin)
        else:
            secret = x_api_key or (bearer.credentials if bearer else None)
            principal = keyring.authenticate(secret) if secret else None
            if principal is None:
                raise Problem(401, "missing or wrong API key: send X-API-Key: SECRET or "
                              "Authorization: Bearer SECRET", headers=UNAUTHORIZED)
        if principal.role < self.role:
            raise Problem(403, f"key {principal.name!r} is a {principal.role.name}; this "
                          f"needs the {self.role.name} role or higher")
        request.state.principal = principal
        return principal


class OpenRule(Rule):
    """``public`` and ``shared`` routes: no key is asked for (nor shown in OpenAPI)."""

    async def __call__(self) -> None:  # type: ignore[override]
        return None


PUBLIC = Depends(OpenRule("public"))
READ = Depends(Rule("read"))
WRITE = Depends(Rule("write"))
ADMIN = Depends(Rule("admin"))
SHARED = Depends(OpenRule("shared"))
Reader = Annotated[Principal, READ]
Writer = Annotated[Principal, WRITE]
Admin = Annotated[Principal, ADMIN]


def rules_of(route) -> list[Rule]:
    """The access rules a route declares (for the route-table test and the docs)."""
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return []
    return [d.call for d in dependant.dependencies if isinstance(d.call, Rule)]


def routes_of(app) -> list:
    """Every route of the app, included routers flattened (FastAPI keeps them lazily)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before lazily included routers
        return list(app.routes)
    return [ctx.original_route for ctx in iter_route_contexts(app.routes)]
