"""The faster paths of parsing and checking a catalog document give what the plain ones gave.

JSON goes through orjson where it reads the text as ``json.loads`` does; spec locations are
kept without a pydantic ``PrivateAttr``; PART_OF cycles are found without networkx (which
still names the cycle).
"""

from __future__ import annotations

import json
import random
from typing import Any

import networkx as nx
import pytest

from catalog.changeset import has_cycle as _has_cycle
from catalog.specs import NodeSpec, RelationSpec, _load_json, parse_document
from metadata.errors import InvalidInputError

TEXTS = [
    '{"x": 1, "x": 2}',
    '{"x": -0}',
    '{"x": -0.0}',
    '{"x": 1E5, "y": 1e-7, "z": 0.1}',
    '{"x": 1.7976931348623157e308, "y": 5e-324, "z": 2.2250738585072011e-308}',
    '{"x": 9223372036854775807, "y": -9223372036854775808, "z": 18446744073709551615}',
    '{"x": 18446744073709551616}',  # orjson: a float
    '{"x": -9223372036854775809}',  # orjson: a float
    '{"x": 123456789012345678901234567890.5}',
    '{"x": "1234567890123456789012"}',
    '{"x": 1e309}',  # orjson refuses; json: inf
    '{"x": NaN, "y": -Infinity}',  # orjson refuses
    '{"x": "\\ud800"}',  # a lone surrogate: orjson refuses
    '{"x": "\\u0000\\ud83d\\ude00\\u00e9\\/"}',
    '{"\\u00e9": [true, false, null, [], {}]}',
    '  {"x": 1}\n\t ',
]


@pytest.mark.parametrize("text", TEXTS)
def test_json_is_read_as_the_standard_library_reads_it(text: str) -> None:
    got = _load_json(text, text.encode("utf-8", "surrogatepass"))
    want = json.loads(text)
    assert repr(got) == repr(want)
    assert type(got.get("x")) is type(want.get("x"))


def test_random_numbers_read_alike() -> None:
    rng = random.Random(5)
    values: list[Any] = [rng.randint(-(2**70), 2**70) for _ in range(300)]
    values += [rng.uniform(-1e300, 1e300) for _ in range(300)]
    values += [rng.random() * 10 ** rng.randint(-300, 300) for _ in range(300)]
    text = json.dumps({"values": values})
    assert repr(_load_json(text, text.encode())) == repr(json.loads(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"nodes": [{"id": "system:a", "name": "A",}]}', "not valid JSON at line 1, column 43"),
        (
            '{"nodes": [{"id": "system:a", "name": "A", "properties": {"x": NaN}}]}',
            "properties.x holds nan",
        ),
        (
            '{"nodes": [{"id": "system:a", "name": "A", "properties": {"x": "\\ud800"}}]}',
            "unpaired surrogate",
        ),
    ],
)
def test_json_errors_keep_their_messages(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_document(text)


def test_big_integers_stay_integers() -> None:
    # 19 and 20 digits within 64 bits: orjson would read the unsigned maximum as a float
    doc = parse_document(
        '{"nodes": [{"id": "system:a", "name": "A", "properties": '
        '{"n": 18446744073709551615, "m": -9223372036854775808}}]}'
    )
    assert doc.nodes[0].properties == {"n": 18446744073709551615, "m": -9223372036854775808}
    assert all(isinstance(v, int) for v in doc.nodes[0].properties.values())
    # beyond 64 bits: refused with the field named (neither the store nor a response holds it)
    with pytest.raises(InvalidInputError, match=r"properties\.n holds an integer outside"):
        parse_document(
            '{"nodes": [{"id": "system:a", "name": "A", "properties": {"n": 18446744073709551616}}]}'
        )


def test_spec_locations() -> None:
    doc = parse_document(
        "nodes: [{id: system:a, name: A}, {id: system:b, name: B}]\n"
        "relations: [{from: system:a, type: DEPENDS_ON, to: system:b}]\n"
        "---\n"
        "nodes: [{id: system:c, name: C}]\n"
    )
    assert [n.loc for n in doc.nodes] == [
        "document[0].nodes[0]",
        "document[0].nodes[1]",
        "document[1].nodes[0]",
    ]
    assert doc.relations[0].loc == "document[0].relations[0]"
    named = parse_document("nodes: [{id: system:a, name: A}]\n", prefix="a.yaml:")
    assert named.nodes[0].loc == "a.yaml:nodes[0]"
    spec = NodeSpec.model_validate({"id": "system:x", "name": "X"})
    assert spec.loc == "input"
    assert spec.at("input.node").loc == "input.node"
    rel = RelationSpec.model_validate({"from": "system:a", "type": "USES", "to": "system:b"})
    assert rel.loc == "input" and rel.at("x[1]").loc == "x[1]"
    # Equality and copies behave as before: the location is part of pydantic's private state.
    assert spec.model_copy().loc == "input.node"
    assert NodeSpec.model_validate({"id": "system:x", "name": "X"}).at("input.node") == spec


def test_attribute_text_is_checked() -> None:
    with pytest.raises(InvalidInputError, match=r"attributes\.classification contains a NUL"):
        parse_document(
            '{"nodes": [{"id": "entity:e", "name": "E", '
            '"attributes": [{"name": "a", "classification": "P\\u0000I"}]}]}'
        )
    with pytest.raises(InvalidInputError, match="attribute 'a' appears twice"):
        parse_document("nodes: [{id: entity:e, name: E, attributes: [{name: a}, {name: a}]}]\n")


def test_cycle_check_agrees_with_networkx() -> None:
    rng = random.Random(11)
    for _ in range(400):
        size = rng.randint(1, 12)
        edges = [
            (f"n{rng.randrange(size)}", f"n{rng.randrange(size)}")
            for _ in range(rng.randint(0, 2 * size))
        ]
        graph = nx.DiGraph()
        graph.add_edges_from(edges)
        assert _has_cycle(edges) == (not nx.is_directed_acyclic_graph(graph)), edges


YAML_TEXTS = [
    "a: 2026-11-23\nb: 0o17\nc: 017\nd: 0x1F\ne: 1_000\nf: .inf\ng: yes\nh: ~\ni: 1e3\n",
    "a: &x [1, {b: c}]\nb: *x\n<<: {m: 1}\n",
    "a: |\n  x\n\n  y\nb: >-\n  x\n  y\nc: 'q''s'\nd: \"\\u00e9\\x85\"\n",
    "a: 1\r\nb: 2\r\n# c\n",
    "\ufeffa: \u00e9\u4e2d\n---\n---\nb: [1, 2]\n",
    "a: !!binary aGVsbG8=\nb: !!set {x, y}\nc: !!str 1\n",
]


@pytest.mark.parametrize("text", YAML_TEXTS)
def test_yaml_through_libyaml_reads_as_before(text: str) -> None:
    import yaml

    from catalog.specs import _load_yaml, _Loader

    want = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    assert repr(_load_yaml(text)) == repr(want)


def test_the_demo_landscape_reads_as_before() -> None:
    import yaml

    from catalog.demo import demo_document
    from catalog.specs import _load_yaml, _Loader

    text = demo_document()
    assert _load_yaml(text) == [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nodes:\n  - id: system:a\n   name: x\n", "not valid YAML at line 3, column 4"),
        ("nodes:\n  - id: system:a\n    name: x\x01\n", "unacceptable character #x0001"),
        ("a: !!python/object:os.system x\n", "not valid YAML at line 1, column 4"),
    ],
)
def test_yaml_errors_keep_their_messages(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_document(text)
