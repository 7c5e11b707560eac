"""``python -m api [--host H] [--port P]``: start the HTTP service with uvicorn.

``python -m api keys add NAME ROLE`` / ``keys list`` / ``keys revoke NAME`` /
``keys new-secret`` manage the API keys kept (hashed) in the database; ``python -m api audit``
prints who did what. Both use the server's settings (``DATABASE_URL`` ...).
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys

import uvicorn


def _store(settings):
    from .db import Store, check_reachable, make_engine, migrate

    engine = make_engine(settings.database_url, connect_timeout_s=settings.db_connect_timeout_s,
                         statement_timeout_s=settings.db_timeout_s)
    check_reachable(engine, settings.db_connect_timeout_s + 2)
    migrate(engine)
    return Store(engine)


def _fail(msg: str, code: int = 2) -> int:
    print(f"python -m api: {msg}", file=sys.stderr)
    return code


def keys_command(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import IntegrityError

    from .access import check_name, digest, parse_env_keys, parse_role
    from .config import Settings

    if args.action == "new-secret":
        print(secrets.token_urlsafe(32))
        return 0
    settings = Settings()
    store = _store(settings)
    actor = f"cli:{args.by}"
    if args.action == "add":
        try:
            name, role = check_name(args.name), parse_role(args.role)
        except ValueError as exc:
            return _fail(str(exc))
        if any(k.name == name for k in parse_env_keys(settings.api_keys)):
            return _fail(f"{name!r} is already a key in OPTIMIZER_API_KEYS")
        secret = secrets.token_urlsafe(32)  # 256 random bits
        try:
            store.add_key(name, role.name, digest(secret), actor)
        except IntegrityError:
            return _fail(f"a key named {name!r} exists already (names are never reused, "
                         "even after a revocation)")
        print(secret)
        print(f"key {name!r} ({role.name}) added; the secret above is shown once and stored "
              "only as a hash. Servers of this database accept it within "
              f"{settings.key_refresh_s:g} s.", file=sys.stderr)
        return 0
    if args.action == "list":
        rows = store.list_keys()
        for k in parse_env_keys(settings.api_keys):
            print(f"{k.name:24} {k.role.name:8} OPTIMIZER_API_KEYS")
        for r in rows:
            state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
            print(f"{r.name:24} {r.role:8} database, added {r.created_at:%Y-%m-%d %H:%M} "
                  f"by {r.created_by}, {state}")
        return 0
    if args.action == "revoke":
        if not store.revoke_key(args.name, actor):
            return _fail(f"no active key named {args.name!r} in the database (keys of "
                         "OPTIMIZER_API_KEYS are removed from that setting)")
        print(f"key {args.name!r} revoked; servers refuse it within "
              f"{settings.key_refresh_s:g} s", file=sys.stderr)
        return 0
    raise AssertionError(args.action)


def audit_command(args: argparse.Namespace) -> int:
    from .config import Settings

    for r in reversed(_store(Settings()).list_audit(args.limit)):
        print(f"{r.at:%Y-%m-%d %H:%M:%S} {r.actor:20} {r.action:10} {r.kind:8} {r.target} "
              f"{r.detail or ''}".rstrip())
    return 0


def serve(args: argparse.Namespace) -> int:
    from .access import is_loopback, parse_env_keys
    from .config import Settings
    from .db import DatabaseUnavailable
    from .main import create_app

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    try:
        env_keys = parse_env_keys(settings.api_keys)
    except ValueError as exc:
        return _fail(str(exc))
    if not env_keys and not _host_is_loopback(args.host, is_loopback):
        try:
            stored = _store(settings).active_keys()
        except DatabaseUnavailable as exc:
            return _fail(f"cannot start: {exc}", 1)
        if not stored:
            return _fail(f"refusing to listen on {args.host}: no API keys are configured, so "
                         "anyone who can reach that address could read and change every "
                         "run. Set OPTIMIZER_API_KEYS=NAME:ROLE:SECRET,... or add a key with "
                         "`python -m api keys add NAME admin`, or listen on 127.0.0.1 only.")
    config = uvicorn.Config(create_app(settings), host=args.host, port=args.port,
                            log_level=args.log_level, timeout_graceful_shutdown=10,
                            ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # the lifespan failed (logged: e.g. the database did not answer)
        return 1
    return 0


def _host_is_loopback(host: str, is_loopback) -> bool:
    return host == "localhost" or is_loopback(host)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m api", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info")
    p.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    k = sub.add_parser("keys", help="API keys kept (hashed) in the database")
    k.add_argument("--by", default="admin", help="who to record in the audit table")
    ka = k.add_subparsers(dest="action", required=True)
    add = ka.add_parser("add", help="create a key and print its secret once")
    add.add_argument("name")
    add.add_argument("role", help="reader, analyst or admin")
    ka.add_parser("list", help="the keys (never their secrets)")
    rv = ka.add_parser("revoke", help="a key stops working")
    rv.add_argument("name")
    ka.add_parser("new-secret", help="print a random secret for OPTIMIZER_API_KEYS")
    a = sub.add_parser("audit", help="who created, deleted, shared what, and key changes")
    a.add_argument("--limit", type=int, default=100)
    args = p.parse_args(argv)
    from .db import DatabaseUnavailable

    try:
        if args.command == "keys":
            return keys_command(args)
        if args.command == "audit":
            return audit_command(args)
    except DatabaseUnavailable as exc:
        return _fail(str(exc), 1)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
