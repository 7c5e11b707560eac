"""The one error type for bad input: every problem names where it is and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input.

    ``loc`` is a JSON-style path to the offending value, e.g.
    ``("projects", 6, "min_stake")`` (0-based row index) or ``("scenario", "budget_musd")``;
    ``msg`` says, in words, what is wrong with it.
    """

    loc: tuple[str | int, ...]
    msg: str

    @property
    def field(self) -> str:
        """Dotted path, e.g. ``projects.6.min_stake``."""
        return ".".join(str(p) for p in self.loc)

    def __str__(self) -> str:
        return self.msg


class InputError(ValueError):
    """Raised before any model is built when projects or a scenario are invalid.

    Carries every problem found (not just the first), so a user can fix a file in one pass.
    """

    def __init__(self, problems: list[Problem] | Problem | str, *, loc: tuple = ()) -> None:
        if isinstance(problems, str):
            problems = [Problem(loc, problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        if not problems:
            raise ValueError("InputError needs at least one problem")
        self.problems: list[Problem] = list(problems)
        super().__init__(self._render())

    def _render(self) -> str:
        head = self.problems[:20]
        lines = [p.msg for p in head]
        if len(self.problems) > len(head):
            lines.append(f"... and {len(self.problems) - len(head)} more problems")
        if len(lines) == 1:
            return lines[0]
        return f"{len(self.problems)} problems in the input:\n" + "\n".join(
            f"  - {line}" for line in lines
        )

    def to_list(self) -> list[dict]:
        """Problems as plain dicts (``loc``, ``msg``), for JSON error bodies."""
        return [{"loc": list(p.loc), "msg": p.msg} for p in self.problems]
