"""Catalog documents are bounded by what they expand to (catalog/specs.py): YAML aliases,
nesting and item counts, for JSON and YAML, refused fast and with the rule and line named."""

from __future__ import annotations

import functools
import json
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.specs import (
    MAX_NESTING,
    CatalogDocument,
    _expanded_items,
    _json_items,
    _load_yaml,
    _Loader,
    json_too_deep,
    parse_document,
)
from metadata.errors import InvalidInputError


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The classic, as a node's properties: each anchor lists the one before ``width`` times
    (``width ** levels`` strings in the last)."""
    lines = ["nodes:", "  - id: system:x", "    name: X", "    properties:"]
    lines.append(f"      a0: &a0 [{', '.join(['lol'] * width)}]")
    for i in range(1, levels):
        lines.append(f"      a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def tree_items(value: Any, stop: int) -> int:
    """Items of loaded data as a tree walk sees them (every alias expanded), up to ``stop``."""
    count, stack = 0, [value]
    while stack and count <= stop:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, tuple):  # an !!omap or !!pairs entry: one mapping and its value
            stack.append(item[1])
        elif isinstance(item, list | set):
            stack.extend(item)
    return count


def refused(text: str, **kw: Any) -> str:
    with pytest.raises(InvalidInputError) as info:
        parse_document(text, **kw)
    assert info.value.field == "document"
    return info.value.message


# The limits, each named with its rule and place


def test_a_billion_laughs_is_refused_in_milliseconds_with_the_rule_and_line() -> None:
    text = billion_laughs()
    assert len(text) < 600  # a few hundred bytes for 9**9 (387 million) strings
    started = time.perf_counter()
    message = refused(text)
    assert time.perf_counter() - started < 0.5  # measured: under a millisecond
    # the first anchor over the limit: 9**7 lols on line 11 (a6), its list at column 11
    assert "expands to more than 1,000,000 items at line 11, column 11" in message
    assert "YAML alias" in message and "CAPAHUB_MAX_DOCUMENT_ITEMS" in message


def test_the_item_limit_is_the_callers() -> None:
    text = billion_laughs(levels=3, width=4)  # 117 items: 6 above the lists, a0 5, a1 21, a2 85
    doc = parse_document(text, max_items=117)
    assert doc.nodes[0].properties is not None
    assert len(doc.nodes[0].properties["a2"]) == 4
    assert "more than 116 items" in refused(text, max_items=116)


def test_aliases_within_the_limit_are_read_as_before() -> None:
    text = (
        "nodes:\n"
        "  - {id: system:a, name: A, tags: &t [x, y], properties: &p {tier: 1, zones: [eu]}}\n"
        "  - {id: system:b, name: B, tags: *t, properties: *p}\n"
        "  - &c {id: system:c, name: C}\n"
        "  - {<<: *c, id: system:d}\n"
    )
    doc = parse_document(text, max_items=100)
    assert [n.id for n in doc.nodes] == ["system:a", "system:b", "system:c", "system:d"]
    assert doc.nodes[1].tags == ["x", "y"] and doc.nodes[1].properties == {
        "tier": 1,
        "zones": ["eu"],
    }
    assert doc.nodes[3].name == "C"


def test_a_recursive_alias_is_refused() -> None:
    for text in ("a: &a [*a]\n", "nodes: [{id: system:a, name: A, properties: &p {self: *p}}]\n"):
        assert "recursive YAML alias at line 1" in refused(text)


def test_nesting_is_bounded_in_yaml_and_json() -> None:
    deep_yaml = "nodes: [{id: system:a, name: A, properties: {p: " + "[" * 70 + "]" * 70 + "}}]"
    assert f"nested deeper than {MAX_NESTING} levels at line 1" in refused(deep_yaml)
    # json.loads would recurse per level: refused before it reads the text
    for deep_json in ("[" * 100_000 + "]" * 100_000, '{"nodes": ' + "[" * 5000):
        started = time.perf_counter()
        assert f"nested deeper than {MAX_NESTING} levels" in refused(deep_json)
        assert time.perf_counter() - started < 0.5
    # libyaml stops at 1,000 levels; the pure-Python loader then recurses: still refused
    assert "nested" in refused("a: " + "[" * 5000 + "]" * 5000)
    assert "nested" in refused("a:\n" + "- " * 5000 + "x")


def test_json_documents_count_their_items() -> None:
    text = '{"nodes": [], "x": [' + ",".join(["0"] * 1200) + "]}"
    assert "holds 1,203 items, more than 1,000" in refused(text, max_items=1000)
    # commas and brackets inside strings are not items
    padded = '{"nodes": [{"id": "system:a", "name": "A", "description": "' + "[,{" * 2000 + '"}]}'
    assert parse_document(padded, max_items=10).nodes[0].id == "system:a"


def test_values_the_loaders_cannot_read_are_refused_with_a_message() -> None:
    for text, message in [
        ("nodes: [{id: !!int x, name: A}]", "a value its tag cannot read"),
        ("a: !!bool 3", "a value its tag cannot read"),
        ("a: !!float ''", "a value its tag cannot read"),
        ("a: " + "1" * 5000, "more than 4,300 digits"),
        ('{"a": ' + "1" * 5000 + "}", "more than 4,300 digits"),
    ]:
        assert message in refused(text)


def test_normal_errors_keep_their_messages() -> None:
    assert "not valid YAML at line 3, column 4" in refused("nodes:\n  - id: system:a\n   name: x\n")
    assert "found undefined alias" in refused("nodes: [*nope]\n")


# Generated documents: anchors, aliases, merges and tags, valid and hostile

#: Values a catalog may hold, and YAML's own kinds of number.
SCALARS = ("x", "1", "-3", "1.5", "true", "null", "''", '"q [,{*a0"', "~", "0x1F", "1_000")
#: What a hostile document might hold: odd tags, unreadable values, huge numbers.
HOSTILE = (
    "9" * 25,
    "9" * 5000,
    ".inf",
    ".nan",
    "190:20:30",
    "2001-12-14",
    "!!int 7",
    "!!int x",
    "!!bool 3",
    "!!float ''",
    "!!str 5",
    "!!binary aGk=",
    "!!null ''",
    "!!python/object:os.system x",
    "!!set {a, b}",
    "!!omap [{a: 1}]",
    "&b *a0",
)


def _flow_list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _flow_map(items: list[str]) -> str:
    return "{" + ", ".join(f"k{i}: {v}" for i, v in enumerate(items)) + "}"


def _leaf(anchors: int, hostile: bool, n: int) -> str:
    """A scalar, an alias or, in a hostile document, an odd value or stray alias."""
    if hostile and n >= 98:
        return f"*a{anchors + n % 2}"  # the anchor being defined (recursive), or an undefined one
    if hostile and n >= 88:
        return HOSTILE[n % len(HOSTILE)]
    if n < 45 or not anchors:
        return SCALARS[n % len(SCALARS)]
    return f"*a{n % anchors}"


#: ``pick(n)``: a number in ``range(n)``, from hypothesis or from a seeded ``random.Random``.
Pick = Callable[[int], int]


def yaml_value(pick: Pick, anchors: int, hostile: bool, depth: int = 0) -> str:
    """A flow YAML value that may use the ``anchors`` defined before it."""
    kind = pick(10) if depth < 3 else 0
    if kind < 6:
        return _leaf(anchors, hostile, pick(100))
    items = [yaml_value(pick, anchors, hostile, depth + 1) for _ in range(pick(5))]
    return _flow_list(items) if kind < 9 else _flow_map(items)


def yaml_collection(pick: Pick, anchors: int, hostile: bool) -> str:
    """What an anchor names: a list (mostly) or a mapping, half of whose items are aliases of
    the one or two anchors before it (a "billion laughs" when there are enough of them)."""
    items = [
        f"*a{anchors - 1 - pick(min(anchors, 2))}"
        if anchors and pick(2)
        else yaml_value(pick, anchors, hostile)
        for _ in range(1 + pick(9))
    ]
    return _flow_map(items) if pick(3) == 0 else _flow_list(items)


def yaml_document(pick: Pick) -> str:
    """A catalog document whose first node defines anchors in its properties and whose other
    nodes and relations use them, in flow or block style, sometimes as several documents; one
    in three is hostile (odd tags and values, recursive and undefined aliases)."""
    hostile = pick(3) == 0
    count = pick(8)
    defined = [f"d{i}: &a{i} {yaml_collection(pick, i, hostile)}" for i in range(count)]
    nodes = [f"{{id: system:a, name: A, properties: {{{', '.join(defined)}}}}}"]
    fields = ("properties: {u: %s}", "tags: %s", "name: %s", "<<: %s")
    for i in range(pick(5)):
        use = yaml_value(pick, count, hostile)
        nodes.append(f"{{id: system:n{i}, name: N, {fields[pick(4)] % use}}}")
    relations = [
        f"{{from: system:a, type: DEPENDS_ON, to: system:n{i}}}" for i in range(1, len(nodes))
    ]
    if pick(2) or not relations:
        body = f"nodes: [{', '.join(nodes)}]\nrelations: [{', '.join(relations)}]\n"
    else:
        body = "nodes:\n" + "".join(f"  - {n}\n" for n in nodes)
        body += "relations:\n" + "".join(f"  - {r}\n" for r in relations)
    if pick(4) == 0:
        body += "---\n" + f"nodes: [{{id: system:z, name: {yaml_value(pick, 0, hostile)}}}]\n"
    return body


@functools.cache
def _below(n: int) -> st.SearchStrategy[int]:
    return st.integers(0, n - 1)


#: Documents drawn choice by choice (hypothesis shrinks a failure to a small one) ...
DRAWN = st.composite(lambda draw: yaml_document(lambda n: draw(_below(n))))()
#: ... and many more from seeds (a draw per document instead of per choice: 20 times faster).
SEEDED = st.integers(0, 2**32 - 1).map(lambda seed: yaml_document(random.Random(seed).randrange))
#: Small limits (the default is 1,000,000): what passes must be built and walked in each case.
LIMITS = st.sampled_from([50, 2_000, 20_000, 20_000])


def _parsed_or_refused(text: str, max_items: int) -> None:
    try:
        doc = parse_document(text, max_items=max_items)
    except InvalidInputError as err:
        assert err.message
        return
    assert isinstance(doc, CatalogDocument)
    # What was accepted expands (aliases and all) to no more than the limit.
    loaded = _load_yaml(text, max_items)
    assert sum(tree_items(d, max_items) for d in loaded) <= max_items


@settings(max_examples=400, deadline=None)
@given(text=DRAWN, max_items=LIMITS)
def test_drawn_yaml_documents_parse_or_are_refused_as_input(text: str, max_items: int) -> None:
    _parsed_or_refused(text, max_items)


@settings(max_examples=3000, deadline=None)
@given(text=SEEDED, max_items=LIMITS)
def test_seeded_yaml_documents_parse_or_are_refused_as_input(text: str, max_items: int) -> None:
    _parsed_or_refused(text, max_items)


@st.composite
def plain_yaml(draw: st.DrawFn) -> str:
    """Anchors and aliases without tags or merge keys: their count must be exact."""
    count = draw(st.integers(1, 6))
    parts = []
    for i in range(count):
        value = yaml_collection(lambda n: draw(_below(n)), i, False)
        parts.append(f"d{i}: &a{i} {value}")
    return "{" + ", ".join(parts) + "}\n"


@settings(max_examples=500, deadline=None)
@given(text=plain_yaml())
def test_yaml_item_counts_equal_the_expanded_tree(text: str) -> None:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        assert node is not None
        counted = _expanded_items(node, 100_000, 100_000)
        data = loader.construct_document(node)
    except InvalidInputError:  # over the budget: walking the loaded tree would take too long
        return
    finally:
        loader.dispose()
    assert counted == tree_items(data, 100_000)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet='ab[]{},:"\\ \n\u00e9', max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=30,
)


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


@settings(max_examples=600, deadline=None)
@given(value=JSON_VALUES, indent=st.sampled_from([None, 1]), limit=st.integers(0, 6))
def test_json_structure_is_read_exactly_without_parsing(
    value: Any, indent: int | None, limit: int
) -> None:
    encoded = json.dumps(value, indent=indent, ensure_ascii=False).encode()
    items = tree_items(value, 10**7)
    assert _json_items(encoded, 0) == items
    assert _json_items(encoded, items) is None
    assert json_too_deep(encoded, limit) == (depth_of(value) > limit)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="[]{} ,a1", max_size=60))
def test_bracket_soup_let_through_never_nests_deeper_than_twice_the_limit(text: str) -> None:
    limit = 4
    if json_too_deep(text.encode(), limit):
        return
    depth = deepest = 0  # how deep a parser following the brackets could go
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}" and depth:
            depth -= 1
    assert deepest <= 2 * limit
