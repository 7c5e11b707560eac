"""A batch's output folder (CONTRACT section 6): ``results.jsonl`` appended row by row as rows
finish, then ``results.csv``, ``selection.csv`` and ``summary.json``.

Durability: each row is one line, written and flushed as its chunk finishes (a SIGKILL loses
at most the rows in flight; the chunk is fsync'ed too). Running again on the same folder
resumes: a torn last line (a kill mid-write) is cut off, the rows present are not solved again,
and the folder must belong to the same spec (``spec.json``), or it is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import csvsafe
from ..errors import InputError
from .table import FLAT_HEAD, flat_row


def spec_sha256(spec_json: dict[str, Any]) -> str:
    text = json.dumps(spec_json, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class DirSink:
    """Rows to ``DIR/results.jsonl`` (see the module docstring)."""

    def __init__(self, out_dir: Path, spec_json: dict[str, Any], dataset_sha256: str) -> None:
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "results.jsonl"
        ident = {"spec_sha256": spec_sha256(spec_json), "dataset_sha256": dataset_sha256}
        spec_file = self.dir / "spec.json"
        if spec_file.exists():
            try:
                old = json.loads(spec_file.read_text())
            except ValueError:
                old = {}
            if {k: old.get(k) for k in ident} != ident:
                raise InputError(f"{str(self.dir)!r} holds the results of another batch spec "
                                 "or dataset; use a new --out folder (or delete this one)",
                                 loc=("out",))
        else:
            spec_file.write_text(json.dumps({**ident, "spec": spec_json}, indent=2,
                                            default=str))
        self.repaired = self._repair_torn_tail()
        self.done: set[int] = set()
        for row in self.stored_rows():
            self.done.add(int(row["index"]))
        self._fh = self.path.open("a", encoding="utf-8")

    def _repair_torn_tail(self) -> bool:
        """Cut a last line that a kill left without its newline (or unparsable)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return False
        with self.path.open("rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - 1))
            if fh.read(1) == b"\n":
                return False
            # find the start of the last line and drop it
            pos = size - 1
            step = 1 << 16
            while pos > 0:
                start = max(0, pos - step)
                fh.seek(start)
                chunk = fh.read(pos - start)
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    fh.truncate(start + nl + 1)
                    return True
                pos = start
            fh.truncate(0)
            return True

    def stored_rows(self) -> Iterator[dict[str, Any]]:
        """Every stored row, in file order (one line at a time)."""
        if not self.path.exists():
            return
        seen: set[int] = set()
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                row = json.loads(line)
                if row["index"] in seen:  # cannot happen by construction; never count twice
                    continue
                seen.add(row["index"])
                yield row

    def write(self, rows: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        for r in rows:
            buf.write(json.dumps(r, separators=(",", ":"), default=str))
            buf.write("\n")
        self._fh.write(buf.getvalue())
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    # -- the finished folder -------------------------------------------------------------
    def finish(self, total: int, varied: list[str], selection: list[dict[str, Any]],
               summary: dict[str, Any]) -> None:
        """Write results.csv (index order, streamed via an offset index), selection.csv and
        summary.json."""
        self._fh.flush()
        offsets = [-1] * total
        with self.path.open("rb") as fh:
            pos = 0
            for line in fh:
                if line.strip():
                    i = int(json.loads(line)["index"])
                    if 0 <= i < total and offsets[i] < 0:
                        offsets[i] = pos
                pos += len(line)
        with (self.dir / "results.csv").open("w", newline="", encoding="utf-8") as out, \
                self.path.open("rb") as fh:
            w = csvsafe.writer(out)
            w.writerow(["index", *varied, *FLAT_HEAD])
            for off in offsets:
                if off < 0:
                    continue
                fh.seek(off)
                w.writerow(flat_row(json.loads(fh.readline()), varied))
        write_selection_csv(self.dir / "selection.csv", selection)
        (self.dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))


def write_selection_csv(path: Path, selection: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csvsafe.writer(fh)
        w.writerow(["project_id", "chosen", "share", "mean_stake", "class"])
        for r in selection:
            w.writerow([r["project_id"], r["chosen"], r["share"], r["mean_stake"], r["class"]])
