"""The metamodel's id grammar and endpoint table."""

from __future__ import annotations

import pytest

from metadata.errors import InvalidInputError
from metadata.model import ALLOWED_ENDPOINTS, Kind, RelationType, check_endpoints, parse_id


@pytest.mark.parametrize(
    ("node_id", "kind", "key"),
    [
        ("system:crm", Kind.SYSTEM, "crm"),
        ("capability:order.change", Kind.CAPABILITY, "order.change"),
        ("entity:crm.contact_v2-x", Kind.DATA_ENTITY, "crm.contact_v2-x"),
        ("step:" + "a" * 128, Kind.JOURNEY_STEP, "a" * 128),
    ],
)
def test_parse_id_accepts_valid_ids(node_id: str, kind: Kind, key: str) -> None:
    assert parse_id(node_id) == (kind, key)


@pytest.mark.parametrize(
    ("node_id", "words"),
    [
        ("crm", "not a node id"),
        ("foo:bar", "unknown kind prefix 'foo'"),
        ("system:CRM", "malformed key"),
        ("system:-crm", "malformed key"),
        ("system:", "malformed key"),
        ("system:" + "a" * 129, "malformed key"),
        ("system:cr m", "malformed key"),
    ],
)
def test_parse_id_names_what_is_wrong(node_id: str, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words) as err:
        parse_id(node_id, field="input.id")
    assert err.value.field == "input.id"
    assert err.value.message.startswith("input.id:")


def test_every_relation_type_has_rules() -> None:
    assert set(ALLOWED_ENDPOINTS) == set(RelationType)


@pytest.mark.parametrize(
    ("rtype", "src", "dst"),
    [
        (RelationType.PROVIDES, Kind.CAPABILITY, Kind.SYSTEM),
        (RelationType.MASTERS, Kind.SYSTEM, Kind.SYSTEM),
        (RelationType.USES, Kind.JOURNEY, Kind.CAPABILITY),
        (RelationType.HARVESTED_FROM, Kind.SOURCE, Kind.SOURCE),
    ],
)
def test_check_endpoints_refuses_broken_rules(rtype: RelationType, src: Kind, dst: Kind) -> None:
    with pytest.raises(InvalidInputError, match=f"{rtype.value} cannot go from a {src.prefix}"):
        check_endpoints(rtype, src, dst)


def test_owns_allows_any_target_from_a_team() -> None:
    for kind in Kind:
        check_endpoints(RelationType.OWNS, Kind.TEAM, kind)
