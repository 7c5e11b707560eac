"""``python -m api [--host H] [--port P]``: start the HTTP service with uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from .main import create_app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level=args.log_level,
                timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
