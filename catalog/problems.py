"""Every problem of a write, collected: where (file, path, line, column), which rule, a hint.

A catalog document (or a mutation's input) is checked whole: each rule it breaks adds a
``Problem``, up to ``MAX_PROBLEMS``; then ``Problems.raise_if_any`` raises one ``CatalogError``
of the first problem's class (``InvalidInputError``, ``NotFoundError``, ``ConflictError``)
whose message names every problem and whose ``details["problems"]`` lists them (the GraphQL
edge sends them as ``extensions.problems``, the CLI prints one line each).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import TYPE_CHECKING, Any, Protocol

from metadata.errors import CatalogError, InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Most problems one write reports; the message says how many more there were.
MAX_PROBLEMS = 100


class Located(Protocol):
    """A spec that knows where it came from (``catalog.specs._Spec``)."""

    @property
    def loc(self) -> str: ...

    def position(self, *path: str | int) -> tuple[str | None, int | None, int | None]: ...


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule: the field (``a.yaml:nodes[3].owner``), its place, the rule, a hint."""

    field: str
    message: str
    rule: str
    error: type[CatalogError] = InvalidInputError
    file: str | None = None
    line: int | None = None
    column: int | None = None
    suggestion: str | None = None
    #: More details for the error raised when this problem is the only one (``current_version``).
    details: dict[str, Any] = dc_field(default_factory=dict, compare=False)

    def text(self) -> str:
        """The problem in one line: message, hint and position."""
        out = self.message
        if self.suggestion is not None:
            out += f"; did you mean `{self.suggestion}`?"
        if self.line is not None:
            out += f" (line {self.line}, column {self.column})"
        return out

    def as_json(self) -> dict[str, Any]:
        """The problem as ``extensions.problems`` carries it."""
        return {
            "code": self.error.code,
            "field": self.field,
            "message": self.text(),
            "rule": self.rule,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "suggestion": self.suggestion,
        }


@dataclass
class Problems:
    """The problems of one write, in the order found."""

    items: list[Problem] = dc_field(default_factory=list)
    more: int = 0

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items) + self.more

    @property
    def full(self) -> bool:
        """Whether no further problem will be kept (checks may stop early)."""
        return len(self.items) >= MAX_PROBLEMS

    def add(self, problem: Problem) -> None:
        """Keep ``problem`` (or count it, past the limit)."""
        if self.full:
            self.more += 1
        else:
            self.items.append(problem)

    def at(
        self,
        spec: Located | None,
        path: Sequence[str | int],
        message: str,
        rule: str,
        *,
        error: type[CatalogError] = InvalidInputError,
        field: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        """Add a problem of ``spec``'s field ``path`` (``("owner",)``; empty: the spec itself).

        ``message`` starts with the field's name, as every message of the catalog does.
        """
        name = field or _field_of(spec.loc if spec is not None else "input", path)
        file = line = column = None
        if spec is not None:
            file, line, column = spec.position(*path)
        self.add(Problem(name, message, rule, error, file, line, column, suggestion))

    def error(self, err: CatalogError, spec: Located | None = None, *path: str | int) -> None:
        """Add a raised ``CatalogError`` as a problem (its message and field kept)."""
        rule = str(err.details.get("rule") or _RULES.get(type(err).__name__, "input"))
        file = line = column = None
        if spec is not None:
            file, line, column = spec.position(*path)
        details = {k: v for k, v in err.details.items() if k not in ("rule", "problems")}
        self.add(
            Problem(
                err.field or "input",
                err.message,
                rule,
                type(err),
                file,
                line,
                column,
                None,
                details,
            )
        )

    def extend(self, other: Iterable[Problem]) -> None:
        """Add several problems."""
        for p in other:
            self.add(p)

    def raise_if_any(self) -> None:
        """Raise every problem found as one error (nothing when there is none)."""
        if self.items:
            raise as_error(self.items, self.more)


_RULES = {"NotFoundError": "exists", "ConflictError": "version", "InvalidInputError": "input"}


def _field_of(loc: str, path: Sequence[str | int]) -> str:
    out = loc
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def as_error(items: Sequence[Problem], more: int = 0) -> CatalogError:
    """One error for ``items``: the first one's class and field, every message, the list."""
    first = items[0]
    total = len(items) + more
    if total == 1:
        message = first.text()
    else:
        listed = "; ".join(p.text() for p in items[:10])
        rest = total - min(len(items), 10)
        message = f"{total} problems: {listed}" + (f" (and {rest} more)" if rest else "")
    details: dict[str, Any] = {
        **first.details,
        "problems": [p.as_json() for p in items],
        "rule": first.rule,
    }
    if more:
        details["more_problems"] = more
    err = first.error(message, field=first.field, **details)
    err._problem_items = (tuple(items), more)  # type: ignore[attr-defined]
    return err


def problem_items(err: CatalogError) -> tuple[tuple[Problem, ...], int]:
    """The problems ``err`` was raised for (``as_error``) and how many more there were; one
    made of its own message when it was raised otherwise."""
    found: tuple[tuple[Problem, ...], int] | None = getattr(err, "_problem_items", None)
    if found is not None:
        return found
    one = Problems()
    one.error(err)
    return tuple(one.items), 0


def problems_of(err: CatalogError) -> list[dict[str, Any]]:
    """The problems an error carries (one made of its own message when it has no list)."""
    listed = err.details.get("problems")
    if isinstance(listed, list):
        return listed
    return [
        {
            "code": err.code,
            "field": err.field,
            "message": err.message,
            "rule": err.details.get("rule"),
            "file": None,
            "line": None,
            "column": None,
            "suggestion": None,
        }
    ]


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``word`` most likely misspells (difflib's ratio, at least 0.6)."""
    found = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


__all__ = [
    "MAX_PROBLEMS",
    "Problem",
    "Problems",
    "as_error",
    "closest",
    "problem_items",
    "problems_of",
]
