"""CSV cells that a spreadsheet cannot run (CSV formula injection, OWASP).

Excel, LibreOffice and Google Sheets treat a cell that starts with ``=``, ``+``, ``-`` or ``@``
as a formula (``=HYPERLINK(...)`` in a scenario name runs when the file is opened), and a
leading tab or carriage return can hide such a start. Every CSV the service and the CLI
write goes through :func:`writer`: a text cell with such a start is written with a leading
apostrophe, which spreadsheets show as text and do not evaluate. Numbers stay numbers: a
negative number written as text (``-12.5``) is left alone.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import IO, Any

_RISKY_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-\d+(\.\d*)?([eE][-+]?\d+)?|-\.\d+([eE][-+]?\d+)?")


def cell(value: Any) -> Any:
    """``value`` as a spreadsheet reads it safely: text with a formula start gets a leading
    apostrophe; anything else (numbers, None, ordinary text) is returned unchanged."""
    if not isinstance(value, str) or not value.startswith(_RISKY_START):
        return value
    if value[0] == "-" and _NUMBER.fullmatch(value):
        return value
    return "'" + value


def uncell(value: str) -> str:
    """The text :func:`cell` was given, for reading back a file this module wrote (a value
    that cannot itself start with an apostrophe, such as a project id)."""
    if value.startswith("'") and value[1:].startswith(_RISKY_START):
        return value[1:]
    return value


class SafeWriter:
    """``csv.writer`` whose rows pass through :func:`cell`."""

    def __init__(self, fh: IO[str], **kwargs: Any) -> None:
        self._w = csv.writer(fh, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._w.writerow([cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(fh: IO[str], **kwargs: Any) -> SafeWriter:
    """A CSV writer (same arguments as :func:`csv.writer`) that neutralises formula cells."""
    return SafeWriter(fh, **kwargs)
