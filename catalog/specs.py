"""Registration input crossing into the catalog: nodes, relations, catalog documents."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Self, get_args

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from yaml.nodes import MappingNode, Node, ScalarNode

from catalog._gc import paused_gc
from catalog.problems import Problem, Problems, closest
from metadata.errors import InvalidInputError
from metadata.model import Attribute, Lifecycle, RelationType

MAX_TEXT = 10_000
MAX_NAME = 500
MAX_TAGS = 64
MAX_JSON_DEPTH = 32
MAX_DOCUMENT_BYTES = 50_000_000
#: Most items (every mapping, list and scalar value; YAML aliases counted each time they are
#: used) a catalog document may expand to, unless the caller says otherwise (the settings'
#: ``max_document_items``).
MAX_DOCUMENT_ITEMS = 1_000_000
#: Deepest nesting of a catalog document or a request body: a catalog document needs about
#: six levels plus its properties (at most ``MAX_JSON_DEPTH``); JSON parsers recurse per level.
MAX_NESTING = 64


class _Loader(yaml.SafeLoader):
    """Safe YAML without timestamp resolution: dates stay strings, as JSON would have them."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

#: The same loader over libyaml's C scanner and parser (the constructor and resolvers are the
#: ones above): loading a 10,000-node document took 2.7 times less. None without libyaml.
_CLoader: type[Any] | None = None
if getattr(yaml, "__with_libyaml__", False):

    class _CLoaderImpl(yaml.CSafeLoader):
        """``_Loader`` on libyaml."""

    _CLoaderImpl.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers
    _CLoader = _CLoaderImpl


def _load_yaml(text: str, max_items: int = MAX_DOCUMENT_ITEMS) -> list[Any]:
    """The documents of a YAML text, empty ones left out, each measured before it is built.

    Through libyaml when it takes the text; anything it refuses is read again by the pure-Python
    loader, so errors keep the messages and positions they always had. A document over a limit
    is refused by whichever loader measured it.
    """
    if _CLoader is not None:
        try:
            return list(_yaml_documents(text, _CLoader, max_items))
        except InvalidInputError:
            raise
        except Exception:  # the pure-Python loader says what is wrong
            pass
    return list(_yaml_documents(text, _Loader, max_items))


def _yaml_documents(text: str, loader_class: type[Any], max_items: int) -> Iterator[Any]:
    """``yaml.load_all``, with each document's node graph measured between composing and
    constructing it: composing shares an aliased node, constructing shares the value built
    from it, but everything after (validation, storage, responses) walks each use again."""
    loader = loader_class(text)
    budget = max_items
    try:
        while loader.check_node():
            node = loader.get_node()
            budget -= _expanded_items(node, budget, max_items)
            data = loader.construct_document(node)
            if data is not None:
                yield data
    finally:
        loader.dispose()


def _expanded_items(root: Node, budget: int, limit: int) -> int:
    """How many items the YAML node graph ``root`` expands to, every alias counted each time
    it is used; refuses a graph over ``budget`` items (``limit`` is the whole text's), with
    collections nested deeper than ``MAX_NESTING`` levels, or containing itself.

    Items are what ``_json_items`` counts: every mapping, sequence and scalar value; a scalar
    mapping key is part of its entry, a collection used as a key counts as a value. One walk
    counts a tree; the first node met twice (an alias) hands over to ``_shared_items``.
    """
    if root.__class__ is ScalarNode:
        return 1
    items = 1  # the root; every other item is counted by its parent
    seen: set[int] = set()
    stack: list[tuple[Node, int]] = [(root, 1)]
    push = stack.append
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            return _shared_items(root, budget, limit)
        seen.add(id(node))
        if depth > MAX_NESTING:
            raise _document_limit(f"nested deeper than {MAX_NESTING} levels", node)
        depth += 1
        if node.__class__ is MappingNode:
            pairs: list[tuple[Node, Node]] = node.value
            items += len(pairs)
            for key, value in pairs:
                if value.__class__ is not ScalarNode:
                    push((value, depth))
                if key.__class__ is not ScalarNode:
                    items += 1
                    push((key, depth))
        else:
            children: list[Node] = node.value
            items += len(children)
            for child in children:
                if child.__class__ is not ScalarNode:
                    push((child, depth))
        if items > budget:
            raise _too_many_items(node, limit)
    return items


def _shared_items(root: Node, budget: int, limit: int) -> int:
    """``_expanded_items`` for a graph with aliases: each node's size and depth is worked out
    once, after its children's, so a "billion laughs" document is refused in time proportional
    to its distinct nodes, without expanding it."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (items, depth)
    open_nodes: set[int] = set()  # collections whose children are being measured
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, measured = stack.pop()
        key = id(node)
        children = _collection_children(node)
        if measured:
            open_nodes.discard(key)
            items = depth = 1
            for child in children:
                if child.__class__ is ScalarNode:
                    items += 1
                else:
                    child_items, child_depth = sizes[id(child)]
                    items += child_items
                    depth = max(depth, child_depth + 1)
            if items > budget:
                raise _too_many_items(node, limit)
            if depth > MAX_NESTING:
                raise _document_limit(f"nested deeper than {MAX_NESTING} levels", node)
            sizes[key] = (items, depth)
        elif key in open_nodes:
            raise _document_limit(
                "recursive YAML alias",
                node,
                " (the anchored value contains an alias of itself, so it expands without end)",
            )
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend(
                (child, False)
                for child in children
                if child.__class__ is not ScalarNode and id(child) not in sizes
            )
    return sizes[id(root)][0]


def _collection_children(node: Node) -> list[Node]:
    """The values of a mapping (and the keys that are collections) or the items of a list."""
    if node.__class__ is MappingNode:
        pairs: list[tuple[Node, Node]] = node.value
        children = [v for _, v in pairs]
        children.extend(k for k, _ in pairs if k.__class__ is not ScalarNode)
        return children
    items: list[Node] = node.value
    return items


def _too_many_items(node: Node, limit: int) -> InvalidInputError:
    return _document_limit(
        f"expands to more than {limit:,} items",
        node,
        " (every mapping, list and value counts, a YAML alias each time it is used); split it, "
        "or raise CAPAHUB_MAX_DOCUMENT_ITEMS",
    )


def _document_limit(rule: str, node: Node, hint: str = "") -> InvalidInputError:
    mark = node.start_mark
    return InvalidInputError(
        f"document: {rule} at line {mark.line + 1}, column {mark.column + 1}{hint}",
        field="document",
    )


class Origin:
    """The text a catalog document was read from; positions are worked out on first use only
    (when something is wrong), by composing the text again with the same YAML loader (JSON is
    read as YAML for this: its flow style is YAML's)."""

    __slots__ = ("_index", "file", "text")

    def __init__(self, file: str | None, text: str) -> None:
        self.file = file
        self.text = text
        self._index: dict[tuple[int, tuple[str | int, ...]], tuple[int, int]] | None = None

    def position(self, doc: int, path: tuple[str | int, ...]) -> tuple[int, int] | None:
        """The line and column (from 1) of ``path`` in document ``doc``: of the key for a
        mapping entry, of the item for a list index; the nearest enclosing one that is in the
        text when ``path`` is not (a missing field: its mapping)."""
        if self._index is None:
            self._index = _positions(self.text)
        while True:
            found = self._index.get((doc, path))
            if found is not None or not path:
                return found
            path = path[:-1]


#: Positions are recorded this deep (``nodes[3].attributes[1].name`` is 4 levels).
_POSITION_DEPTH = 8


def _positions(text: str) -> dict[tuple[int, tuple[str | int, ...]], tuple[int, int]]:
    index: dict[tuple[int, tuple[str | int, ...]], tuple[int, int]] = {}
    loader = (_CLoader or _Loader)(text)
    doc = 0
    try:
        while loader.check_node():
            root = loader.get_node()
            if root is None or (
                root.__class__ is ScalarNode and root.tag == "tag:yaml.org,2002:null"
            ):
                continue  # an empty document: left out of the documents, as when loading
            index[(doc, ())] = (root.start_mark.line + 1, root.start_mark.column + 1)
            stack: list[tuple[Node, tuple[str | int, ...]]] = [(root, ())]
            seen: set[int] = set()
            while stack:
                node, path = stack.pop()
                if id(node) in seen or len(path) >= _POSITION_DEPTH:
                    continue
                seen.add(id(node))
                if node.__class__ is MappingNode:
                    for key, value in node.value:
                        if key.__class__ is not ScalarNode:
                            continue
                        sub = (*path, str(key.value))
                        index.setdefault(
                            (doc, sub), (key.start_mark.line + 1, key.start_mark.column + 1)
                        )
                        stack.append((value, sub))
                elif node.__class__ is not ScalarNode:
                    for i, item in enumerate(node.value):
                        sub = (*path, i)
                        index[(doc, sub)] = (item.start_mark.line + 1, item.start_mark.column + 1)
                        stack.append((item, sub))
            doc += 1
    except Exception:  # noqa: BLE001 - no positions for a text YAML cannot compose
        pass
    finally:
        loader.dispose()
    return index


def check_text(value: str, field: str) -> str:
    """Refuse text a database cannot store faithfully (NUL, unpaired surrogates)."""
    if "\x00" in value:
        raise ValueError(f"{field} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{field} is not valid Unicode (unpaired surrogate)") from None
    return value


#: Integers a JSON value may hold: what the store's and the responses' encoder (orjson) writes.
_INT64_MIN, _INT64_MAX = -(2**63), 2**64 - 1


def check_json(value: Any, field: str, depth: int = 0) -> Any:
    """Refuse JSON values that do not round-trip: NaN, infinities, integers beyond 64 bits,
    bad text, deep nesting."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{field} is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        check_text(value, field)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{field} holds {value}, which JSON cannot represent")
    elif (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not _INT64_MIN <= value <= _INT64_MAX
    ):
        raise ValueError(f"{field} holds an integer outside the 64-bit range; send it as a string")
    elif isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{field} has a non-string key {k!r}")
            check_text(k, field)
            check_json(v, f"{field}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_json(v, f"{field}[{i}]", depth + 1)
    elif value is not None and not isinstance(value, bool | int | float):
        raise ValueError(f"{field} holds a {type(value).__name__}, which is not JSON")
    return value


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # Where a spec came from lives in pydantic's private storage, set by ``at`` only. Not a
    # declared ``PrivateAttr``: with one, pydantic calls back into Python to initialize it for
    # every instance validated (60,000 for a 10,000-node document: half of parsing it).

    def at(
        self,
        loc: str,
        origin: Origin | None = None,
        doc: int = 0,
        path: tuple[str | int, ...] = (),
    ) -> Self:
        """Set where this spec came from, used to name fields in errors (``nodes[3]``), and
        where in which text (``origin``: document ``doc`` of it, at ``path``)."""
        private: dict[str, Any] = {"_loc": loc}
        if origin is not None:
            private["_origin"] = (origin, doc, path)
        object.__setattr__(self, "__pydantic_private__", private)
        return self

    @property
    def loc(self) -> str:
        """Where this spec came from, e.g. ``nodes[3]`` or ``input``."""
        private = self.__pydantic_private__
        return str(private["_loc"]) if private else "input"

    def position(self, *path: str | int) -> tuple[str | None, int | None, int | None]:
        """The file, line and column of this spec's field ``path`` (of the spec itself when the
        field is not in the text); Nones when the spec was not read from a text."""
        private = self.__pydantic_private__
        found = private.get("_origin") if private else None
        if found is None:
            return None, None, None
        origin, doc, base = found
        line_column = origin.position(doc, (*base, *path))
        if line_column is None:
            return origin.file, None, None
        return origin.file, *line_column


class NodeSpec(_Spec):
    """A node to create or update; fields left out keep their stored value."""

    id: str = Field(max_length=200)
    #: Needed for a new node; left out, an existing node keeps its name (null is refused).
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME,
        description="Needed for a new node; left out, an existing node keeps its name.",
    )
    description: str | None = Field(default=None, max_length=MAX_TEXT)
    tags: list[str] | None = Field(default=None, max_length=MAX_TAGS)
    lifecycle: Lifecycle | None = None
    owner: str | None = Field(default=None, max_length=200)
    properties: dict[str, Any] | None = None
    attributes: list[Attribute] | None = Field(default=None, max_length=2000)
    expected_version: int | None = Field(
        default=None,
        alias="expectedVersion",
        ge=0,
        description="Refuse the write (CONFLICT) unless the node is at this version (0: new).",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str:
        if v is None:
            raise ValueError("name must not be null (leave it out to keep the stored name)")
        if not v.strip():
            raise ValueError("name must not be blank")
        return check_text(v.strip(), "name")

    @field_validator("description")
    @classmethod
    def _description(cls, v: str | None) -> str | None:
        return None if v is None else check_text(v, "description")

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        out: list[str] = []
        for t in v:
            t = check_text(t.strip(), "tags")
            if not t or len(t) > 100:
                raise ValueError(f"tag {t!r} must be 1-100 characters")
            if t not in out:
                out.append(t)
        return out

    @field_validator("properties")
    @classmethod
    def _properties(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if v is None else check_json(v, "properties")

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, v: list[Attribute] | None) -> list[Attribute] | None:
        if v is None:
            return None
        seen: set[str] = set()
        for a in v:
            for name in _ATTRIBUTE_FIELDS:
                text = getattr(a, name)
                if isinstance(text, str):
                    check_text(text, f"attributes.{name}")
            if a.name in seen:
                raise ValueError(f"attribute {a.name!r} appears twice")
            seen.add(a.name)
        return v


#: The fields of an attribute, in declaration order (what ``model_dump`` would list).
_ATTRIBUTE_FIELDS = tuple(Attribute.model_fields)


class RelationSpec(_Spec):
    """A relation to create or update (properties left out keep their stored value)."""

    from_: str = Field(alias="from", max_length=200)
    type: RelationType
    to: str = Field(max_length=200)
    properties: dict[str, Any] | None = None

    @field_validator("properties")
    @classmethod
    def _properties(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if v is None else check_json(v, "properties")


class CapabilitySpec(_Spec):
    """A capability with its place in the map, its providers and the data it touches."""

    key: str = Field(max_length=200)
    name: str = Field(min_length=1, max_length=MAX_NAME)
    description: str | None = Field(default=None, max_length=MAX_TEXT)
    parent: str | None = None
    domain: str | None = None
    owner: str | None = None
    provided_by: list[str] = Field(default_factory=list, alias="providedBy")
    reads: list[str] = Field(default_factory=list)
    writes: list[str] = Field(default_factory=list)
    tags: list[str] | None = None
    properties: dict[str, Any] | None = None


class CatalogDocument(_Spec):
    """A declarative catalog file: nodes, relations and whether to prune missing relations."""

    nodes: list[NodeSpec] = Field(default_factory=list)
    relations: list[RelationSpec] = Field(default_factory=list)
    prune: bool = False


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """Turn pydantic's errors into one message that names each offending field."""
    parts = []
    for e in err.errors()[:5]:
        loc = prefix
        for p in e["loc"]:
            loc += f"[{p}]" if isinstance(p, int) else (f".{p}" if loc else str(p))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{loc or 'document'}: {msg}")
    more = len(err.errors()) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _join(prefix: str, loc: Iterable[str | int]) -> str:
    out = prefix
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out and out[-1] != ":" else str(p))
    return out


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (itself, or inside a list or an optional)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _fields_at(root: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The field names (as written: aliases) of the model that holds ``loc``'s last part."""
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        by_name = {f.alias or n: f for n, f in model.model_fields.items()}
        info = by_name.get(part) or model.model_fields.get(part)
        model = _model_in(info.annotation) if info is not None else None
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def validation_problems(
    err: ValidationError,
    root: type[BaseModel],
    prefix: str,
    problems: Problems,
    origin: Origin | None = None,
    doc: int = 0,
) -> None:
    """Add every error pydantic found to ``problems``: the field, its place in ``origin``, the
    rule (pydantic's error type) and, for an unknown field or value, the likely intended one."""
    for e in err.errors(include_url=False):
        if problems.full:
            problems.more += 1
            continue
        loc: tuple[str | int, ...] = tuple(e["loc"])
        name = _join(prefix, loc) or "document"
        msg = e["msg"].removeprefix("Value error, ")
        rule = str(e["type"])
        suggestion = None
        if rule == "extra_forbidden":
            msg, rule = "unknown field", "unknown-field"
            suggestion = closest(str(loc[-1]), _fields_at(root, loc)) if loc else None
        elif rule == "enum":
            expected = re.findall(r"'([^']*)'", str((e.get("ctx") or {}).get("expected", "")))
            if isinstance(e.get("input"), str):
                suggestion = closest(e["input"].upper(), expected)
        elif rule == "missing":
            rule = "required"
        line = column = None
        if origin is not None:
            found = origin.position(doc, loc)
            if found is not None:
                line, column = found
        problems.add(
            Problem(
                name,
                f"{name}: {msg}",
                rule,
                InvalidInputError,
                origin.file if origin is not None else None,
                line,
                column,
                suggestion,
            )
        )


def build(model: type[_Spec], data: Any, loc: str) -> Any:
    """Validate ``data`` into ``model`` or raise ``InvalidInputError`` naming every field."""
    try:
        return model.model_validate(data).at(loc)
    except ValidationError as err:
        problems = Problems()
        validation_problems(err, model, loc, problems)
        problems.raise_if_any()
        raise  # pragma: no cover - pydantic reports at least one error


#: Every digit becomes "0": a run of 19 zeros then marks a run of 19 digits (a bytes
#: translate and a substring search: a few milliseconds for 10 MB, where a regex took 0.17 s).
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19


#: A JSON string with its escapes; replaced by one character before the structure is read.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_TO_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def json_too_deep(encoded: bytes, limit: int = MAX_NESTING) -> bool:
    """Whether a JSON text nests deeper than ``limit`` levels, judged without parsing it.

    A parser that recurses per level (``json.loads``) may then be given the text: it never
    needs more than ``2 * limit`` levels, even when the brackets do not balance (the text is
    then refused for that). Strings are left out; brackets are counted with C-speed scans.
    """
    if encoded.count(b"[") + encoded.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", encoded).translate(_TO_SQUARE, _NOT_BRACKETS)
    if b"[" * (limit + 1) in brackets:
        return True
    # Each round removes the innermost pairs: a text that is not empty after ``limit`` rounds
    # nests deeper. What is left without pairs (``]]][[``) is unbalanced: a parser goes at
    # most one level deeper per opening bracket left, after the rounds already removed.
    for _ in range(limit):
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return shorter.count(b"[") > limit
        brackets = shorter
    return b"[" in brackets


def _json_items(encoded: bytes, limit: int) -> int | None:
    """How many values (objects, arrays, scalars) a JSON text holds, when more than ``limit``;
    None when it holds at most ``limit``.

    Every value but the outermost follows a ``[``, a ``:`` or a ``,``, and every object member
    has its ``:``: values = 1 + commas + non-empty containers. Counting those characters in the
    raw text (strings included) is an upper bound found in milliseconds; only a text over the
    limit by that count is counted exactly, with its strings left out.
    """
    if encoded.count(b",") + encoded.count(b"[") + encoded.count(b"{") < limit:
        return None
    text = _JSON_STRING.sub(b"0", encoded).translate(None, b" \t\r\n")
    containers = text.count(b"[") + text.count(b"{") - text.count(b"[]") - text.count(b"{}")
    items = 1 + text.count(b",") + containers
    return items if items > limit else None


def _load_json(text: str, encoded: bytes, max_items: int = MAX_DOCUMENT_ITEMS) -> Any:
    """``json.loads(text)``, through orjson (several times faster) wherever both give the same.

    orjson refuses what the standard library accepts beyond strict JSON (NaN, Infinity,
    1e400, lone surrogates): those texts, and invalid ones, go to ``json.loads``, which then
    gives the same value or the same error as always. orjson also reads integers beyond 64 bits
    as floats: a text with 19 digits in a row anywhere (``encoded`` is the text in UTF-8) goes
    to ``json.loads`` as well. A text of more than ``max_items`` values is refused before either
    reads it; one nested too deeply before ``json.loads`` does (orjson stops at 1,024 levels).
    """
    items = _json_items(encoded, max_items)
    if items is not None:
        raise InvalidInputError(
            f"document: holds {items:,} items, more than {max_items:,} (every object, array "
            "and value counts); split it, or raise CAPAHUB_MAX_DOCUMENT_ITEMS",
            field="document",
        )
    if _LONG_RUN not in encoded.translate(_DIGITS_TO_ZERO):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    if json_too_deep(encoded):
        raise InvalidInputError(
            f"document: nested deeper than {MAX_NESTING} levels", field="document"
        )
    return json.loads(text)


def _unreadable(err: Exception) -> str:
    """What a loader's own exception says about a value it could not read."""
    if isinstance(err, ValueError) and "integer string conversion" in str(err):
        return "an integer has more than 4,300 digits; send it as a string"
    return f"a value its tag cannot read ({type(err).__name__}: {err})"


def load_documents(
    text: str, *, max_items: int = MAX_DOCUMENT_ITEMS, max_bytes: int = MAX_DOCUMENT_BYTES
) -> list[Any]:
    """The documents of a JSON text, or of a YAML text (``---`` separated; empty ones left
    out), each bounded before it is built: at most ``max_bytes`` of UTF-8 and ``max_items``
    items (YAML aliases counted at each use), nested at most ``MAX_NESTING`` levels.

    The one loader of the hub: catalog documents and harvested specs both go through it.

    Raises:
        InvalidInputError: a text that does not parse or breaks a bound (``document: ...``,
            with the line and column where the parser stopped).
    """
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) > max_bytes:
        raise InvalidInputError(
            f"document: larger than {max_bytes / 1_000_000:g} MB; split it", field="document"
        )
    with paused_gc():
        return _load_documents(text, encoded, max_items)


def parse_document(
    text: str, *, prefix: str = "", max_items: int = MAX_DOCUMENT_ITEMS
) -> CatalogDocument:
    """Parse a catalog document (JSON, or YAML with one or several documents) and merge them.

    ``prefix`` goes before the location of every spec (``"a.yaml:"`` gives ``a.yaml:nodes[3]``).
    ``max_items`` bounds what the text expands to (YAML aliases counted at each use), checked
    before anything is built from it.
    """
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_DOCUMENT_BYTES:
        raise InvalidInputError(
            f"document: larger than {MAX_DOCUMENT_BYTES // 1_000_000} MB; split it",
            field="document",
        )
    with paused_gc():
        return _parse_document(text, encoded, prefix, max_items)


def _load_documents(text: str, encoded: bytes, max_items: int) -> list[Any]:
    stripped = text.lstrip()
    raw_docs: list[Any]
    if stripped.startswith(("{", "[")):
        try:
            raw_docs = [_load_json(text, encoded, max_items)]
        except json.JSONDecodeError as err:
            raise InvalidInputError(
                f"document: not valid JSON at line {err.lineno}, column {err.colno}: {err.msg}",
                field="document",
            ) from None
        except ValueError as err:  # an integer of more digits than int() reads (4,300)
            raise InvalidInputError(
                f"document: not valid JSON: {_unreadable(err)}", field="document"
            ) from None
    else:
        try:
            raw_docs = _load_yaml(text, max_items)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise InvalidInputError(
                f"document: not valid YAML{where}: {problem}", field="document"
            ) from None
        except RecursionError:
            raise InvalidInputError("document: nested too deeply", field="document") from None
        except InvalidInputError:
            raise
        except Exception as err:  # a value its tag cannot read (``!!int x``, ``!!bool 3``)
            raise InvalidInputError(
                f"document: not valid YAML: {_unreadable(err)}", field="document"
            ) from None
    return raw_docs


def _parse_document(text: str, encoded: bytes, prefix: str, max_items: int) -> CatalogDocument:
    raw_docs = _load_documents(text, encoded, max_items)
    origin = Origin(prefix.removesuffix(":") or None, text)
    problems = Problems()
    merged = CatalogDocument()
    for i, raw in enumerate(raw_docs):
        loc = f"document[{i}]." if len(raw_docs) > 1 else ""
        if not isinstance(raw, dict):
            problems.at(
                None,
                (),
                f"{prefix}{loc or 'document'}: expected a mapping with 'nodes' and 'relations', "
                f"got {type(raw).__name__}",
                "document-shape",
                field="document",
            )
            continue
        try:
            doc = CatalogDocument.model_validate(raw)
        except ValidationError as err:
            validation_problems(err, CatalogDocument, prefix + loc.rstrip("."), problems, origin, i)
            continue
        except RecursionError:
            raise InvalidInputError("document: nested too deeply", field="document") from None
        for j, n in enumerate(doc.nodes):
            n.at(f"{prefix}{loc}nodes[{j}]", origin, i, ("nodes", j))
        for j, r in enumerate(doc.relations):
            r.at(f"{prefix}{loc}relations[{j}]", origin, i, ("relations", j))
        merged.nodes.extend(doc.nodes)
        merged.relations.extend(doc.relations)
        merged.prune = merged.prune or doc.prune
    problems.raise_if_any()
    return merged


__all__ = [
    "CapabilitySpec",
    "CatalogDocument",
    "NodeSpec",
    "RelationSpec",
    "build",
    "check_json",
    "json_too_deep",
    "parse_document",
    "validation_problems",
    "Origin",
    "load_documents",
]
