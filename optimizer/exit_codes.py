"""The command line's exit codes (CONTRACT section 5), for every command (solve, batch,
report, draws): 0 optimal/feasible (or every batch row written), 3 infeasible, 2 bad input
(the message on stderr), 1 anything else. Its own module so that commands outside
``optimizer.cli`` use it without importing the CLI."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError
from .schema import WITH_PORTFOLIO

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_INFEASIBLE = 0, 1, 2, 3


class Failed(Exception):
    """A command step failed; its message is on stderr already; ``code`` is the exit code."""

    def __init__(self, code: int) -> None:
        self.code = code


@contextmanager
def exit_codes(writing: Path | None = None) -> Iterator[None]:
    """The CLI's contract for a step: bad input -> its message on stderr and exit 2; an
    output file that cannot be written (``writing``) -> exit 2; anything else -> its name and
    message and exit 1, never a traceback. Raises :class:`Failed` with the code."""
    try:
        yield
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise Failed(EXIT_BAD_INPUT) from None
    except OSError as exc:
        if writing is None:
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            raise Failed(EXIT_ERROR) from None
        print(f"error: cannot write {str(writing)!r}: {exc}", file=sys.stderr)
        raise Failed(EXIT_BAD_INPUT) from None
    except Exception as exc:  # noqa: BLE001 - the CLI's contract is an exit code, not a trace
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise Failed(EXIT_ERROR) from None


def for_status(status: str) -> int:
    """The exit code of a solve that ended with ``status``."""
    if status in WITH_PORTFOLIO:
        return EXIT_OK
    return EXIT_INFEASIBLE if status == "infeasible" else EXIT_ERROR
