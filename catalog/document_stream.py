"""Catalog files read in parts: a bulk load never holds a whole document, its models or its
diff at once.

A ``DocumentStream`` reads one file twice: its nodes in parts of ``PART_SIZE`` validated
specs, then its relations (the registry writes every node of every file before any relation,
so a relation may name a node defined anywhere, later files included). JSON is read
incrementally with ijson (the whole file at once without it); YAML one document at a time
(``---`` separated), each bounded as ``catalog.specs`` bounds it.

Problems go to the ``Problems`` the caller passes, with the same fields, rules, hints and
positions as a whole document gives: positions are worked out from the file only when
something is wrong. What a streamed file does not report: unknown top-level fields of a JSON
file (YAML documents are checked whole), and a byte or item limit for JSON (memory is
bounded by the part, not by the file).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson
import yaml
from pydantic import TypeAdapter, ValidationError

from catalog.problems import Problems
from catalog.specs import (
    MAX_DOCUMENT_ITEMS,
    CatalogDocument,
    NodeSpec,
    Origin,
    RelationSpec,
    _CLoader,
    _Loader,
    _Spec,
    _yaml_documents,
    validation_problems,
)
from metadata.errors import InvalidInputError

try:  # an optional speed-up: without it a JSON file is read whole
    import ijson  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - ijson is installed where the bulk path is measured
    ijson = None

#: Specs validated and handed over at a time.
PART_SIZE = 5_000

S = TypeVar("S", bound=_Spec)


class _FileOrigin(Origin):
    """An ``Origin`` whose text is read from the file on the first position asked for (only
    when something is wrong)."""

    def __init__(self, file: str | None, path: Path) -> None:
        super().__init__(file, "")
        self.path = path

    def position(self, doc: int, path: tuple[str | int, ...]) -> tuple[int, int] | None:
        """See ``Origin.position``."""
        if self._index is None and not self.text:
            self.text = self.path.read_text(encoding="utf-8")
        return super().position(doc, path)


class _Within(Origin):
    """``origin`` seen from inside one list item (``("nodes", 3)``): what a spec validated on
    its own reports at ``("name",)`` is at ``("nodes", 3, "name")`` of its document."""

    def __init__(self, origin: Origin, base: tuple[str | int, ...]) -> None:
        super().__init__(origin.file, "")
        self.origin = origin
        self.base = base

    def position(self, doc: int, path: tuple[str | int, ...]) -> tuple[int, int] | None:
        """See ``Origin.position``."""
        return self.origin.position(doc, (*self.base, *path))


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(model: type[S]) -> TypeAdapter[list[S]]:
    found = _ADAPTERS.get(model)
    if found is None:
        found = _ADAPTERS[model] = TypeAdapter(list[model])  # type: ignore[valid-type]
    return found


class DocumentStream:
    """One catalog file, read in parts (nodes first, then relations)."""

    def __init__(
        self,
        path: Path,
        problems: Problems,
        *,
        prefix: str | None = None,
        max_items: int = MAX_DOCUMENT_ITEMS,
        part_size: int = PART_SIZE,
    ) -> None:
        self.path = path
        self.problems = problems
        self.prefix = f"{path}:" if prefix is None else prefix
        self.max_items = max_items
        self.part_size = part_size
        self.origin = _FileOrigin(self.prefix.removesuffix(":") or None, path)
        self.prune = False
        with path.open("rb") as f:
            head = f.read(4096).lstrip()
        self.is_json = head.startswith((b"{", b"["))

    def node_parts(self) -> Iterator[list[NodeSpec]]:
        """The file's nodes, ``part_size`` validated specs at a time (invalid ones reported
        to ``problems`` and left out)."""
        return self._parts("nodes", NodeSpec)

    def relation_parts(self) -> Iterator[list[RelationSpec]]:
        """The file's relations, as ``node_parts``."""
        return self._parts("relations", RelationSpec)

    # reading ----------------------------------------------------------------------------------

    def _parts(self, section: str, model: type[S]) -> Iterator[list[S]]:
        for doc, loc, items in self._sections(section):
            part: list[Any] = []
            start = 0
            for j, raw in enumerate(items):
                if not part:
                    start = j
                part.append(raw)
                if len(part) >= self.part_size:
                    yield self._validated(model, part, start, doc, loc, section)
                    part = []
            if part:
                yield self._validated(model, part, start, doc, loc, section)

    def _sections(self, section: str) -> Iterator[tuple[int, str, Iterator[Any]]]:
        """(document index, location prefix, the section's raw items) for each document."""
        if self.is_json:
            yield 0, "", self._json_items(section)
            return
        for i, (raw, several) in enumerate(self._yaml_docs()):
            loc = f"document[{i}]." if several else ""
            if not isinstance(raw, dict):
                if section == "nodes":
                    self.problems.at(
                        None,
                        (),
                        f"{self.prefix}{loc or 'document'}: expected a mapping with 'nodes' "
                        f"and 'relations', got {type(raw).__name__}",
                        "document-shape",
                        field="document",
                    )
                continue
            if section == "nodes":
                self._check_top(raw, i, loc)
            items = raw.get(section)
            yield i, loc, iter(items if isinstance(items, list) else ())

    def _check_top(self, raw: dict[str, Any], doc: int, loc: str) -> None:
        """The document's own fields (``prune``, unknown ones, sections that are no lists),
        checked as a whole document would be; sets ``prune``."""
        top = {k: v for k, v in raw.items() if k not in ("nodes", "relations")}
        for k in ("nodes", "relations"):
            if k in raw and not isinstance(raw[k], list):
                top[k] = raw[k]
        try:
            found = CatalogDocument.model_validate(top)
        except ValidationError as err:
            validation_problems(
                err, CatalogDocument, self.prefix + loc.rstrip("."), self.problems, self.origin, doc
            )
            return
        self.prune = self.prune or found.prune

    def _yaml_docs(self) -> Iterator[tuple[Any, bool]]:
        """Each YAML document, and whether the file holds more than one."""
        with self.path.open("r", encoding="utf-8") as f:
            try:
                # The loaders read a stream as they read a text, a buffer at a time.
                docs = _yaml_documents(f, _CLoader or _Loader, self.max_items)  # type: ignore[arg-type]
                current = next(docs, None)
                while current is not None:
                    after = next(docs, None)
                    several = getattr(self, "_several", False) or after is not None
                    self._several = several
                    yield current, several
                    current = after
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                problem = getattr(err, "problem", None) or str(err).splitlines()[0]
                self.problems.at(
                    None,
                    (),
                    f"{self.prefix[:-1]}: document: not valid YAML{where}: {problem}",
                    "input",
                    field="document",
                )
            except InvalidInputError as err:
                self.problems.error(err)

    def _json_items(self, section: str) -> Iterator[Any]:
        if section == "nodes":
            self.prune = self._json_prune()
        if ijson is None:
            # No incremental parser: the whole file, as the document path reads it.
            data = orjson.loads(self.path.read_bytes())
            items = data.get(section) if isinstance(data, dict) else None
            yield from items if isinstance(items, list) else ()
            return
        with self.path.open("rb") as f:
            try:
                yield from ijson.items(f, f"{section}.item", use_float=True)
            except ijson.JSONError as err:
                self.problems.at(
                    None,
                    (),
                    f"{self.prefix[:-1]}: document: not valid JSON: {err}",
                    "input",
                    field="document",
                )

    def _json_prune(self) -> bool:
        """The document's ``prune`` (false unless the file says so): found by a byte search
        first, so that a file without it is not read once more."""
        with self.path.open("rb") as f:
            if self.path.stat().st_size == 0:
                return False
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                if m.find(b'"prune"') < 0:
                    return False
        if ijson is None:
            data = orjson.loads(self.path.read_bytes())
            value = data.get("prune", False) if isinstance(data, dict) else False
        else:
            with self.path.open("rb") as f:
                value = next(iter(ijson.items(f, "prune")), False)
        try:
            return CatalogDocument.model_validate({"prune": value}).prune
        except ValidationError as err:
            validation_problems(
                err, CatalogDocument, self.prefix.removesuffix(":"), self.problems, self.origin
            )
            return False

    def _validated(
        self, model: type[S], raw: list[Any], start: int, doc: int, loc: str, section: str
    ) -> list[S]:
        """The specs of ``raw`` (items ``start``... of ``section``), each placed in the file;
        one validation call for the part, item by item only to report what is wrong."""
        try:
            specs: list[S] = _adapter(model).validate_python(raw)
        except ValidationError:
            specs = []
            for j, item in enumerate(raw, start):
                try:
                    specs.append(model.model_validate(item))
                except ValidationError as err:
                    validation_problems(
                        err,
                        model,
                        f"{self.prefix}{loc}{section}[{j}]",
                        self.problems,
                        _Within(self.origin, (section, j)),
                        doc,
                    )
                    specs.append(None)  # type: ignore[arg-type]
        out: list[S] = []
        for j, spec in enumerate(specs, start):
            if spec is not None:
                out.append(
                    spec.at(f"{self.prefix}{loc}{section}[{j}]", self.origin, doc, (section, j))
                )
        return out


__all__ = ["PART_SIZE", "DocumentStream"]
