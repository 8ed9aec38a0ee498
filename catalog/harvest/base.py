"""The harvesting extension point: a source definition, the ``Harvester`` protocol, its batch."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from catalog.harvest._naming import IdAllocator, make_key, slugify
from catalog.specs import MAX_NAME, MAX_TAGS, MAX_TEXT, NodeSpec, RelationSpec, check_text
from catalog.specs import format_validation_error as _format
from metadata.errors import InvalidInputError
from metadata.model import KEY_PATTERN, Kind, Lifecycle, RelationType, parse_id

if TYPE_CHECKING:
    from catalog.harvest.fetch import Fetcher

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class SourceType(enum.Enum):
    """The kinds of source a harvester can read."""

    OPENAPI = "openapi"
    GRAPHQL = "graphql"
    SQL = "sql"
    BACKSTAGE = "backstage"


class SourceSpec(BaseModel):
    """A source to register: where to read, what format, which system it describes."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    key: str = Field(max_length=128)
    name: str = Field(min_length=1, max_length=MAX_NAME)
    type: SourceType
    location: str = Field(min_length=1, max_length=4000)
    system: str = Field(max_length=200)
    credentials_env: str | None = Field(default=None, alias="credentialsEnv")

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        v = v.removeprefix("source:")
        if KEY_PATTERN.fullmatch(v) is None:
            raise ValueError(
                f"{v!r} is not a key: 1-128 lowercase letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return v

    @field_validator("name", "location")
    @classmethod
    def _text(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return check_text(v.strip(), "text")

    @field_validator("system")
    @classmethod
    def _system(cls, v: str) -> str:
        kind, _ = parse_id(v, field="system")
        if kind is not Kind.SYSTEM:
            raise ValueError(f"{v!r} is not a system id (system:...)")
        return v

    @field_validator("credentials_env")
    @classmethod
    def _env(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if _ENV_NAME.fullmatch(v.strip()) is None:
            raise ValueError(f"{v!r} is not an environment variable name")
        return v.strip()

    @property
    def id(self) -> str:
        """The source node's id, ``source:<key>``."""
        return f"source:{self.key}"

    def properties(self) -> dict[str, Any]:
        """The source node's properties (never any secret: only the variable's name)."""
        out: dict[str, Any] = {"type": self.type.name, "location": self.location}
        if self.credentials_env:
            out["credentialsEnv"] = self.credentials_env
        return out

    @classmethod
    def build(cls, data: Mapping[str, Any], loc: str = "input") -> SourceSpec:
        """Validate ``data`` or raise ``InvalidInputError`` naming the offending field."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as err:
            raise InvalidInputError(_format(err, loc), field=loc) from None


@dataclass
class HarvestContext:
    """What a harvester gets: the source, a policy-bound reader and the credentials."""

    source_id: str
    key: str
    name: str
    system: str
    location: str
    fetcher: Fetcher
    credentials: str | None = field(default=None, repr=False)

    def auth_headers(self) -> dict[str, str]:
        """An Authorization header from the credentials (``Bearer`` unless a scheme is given)."""
        if not self.credentials:
            return {}
        value = self.credentials.strip()
        return {"Authorization": value if " " in value else f"Bearer {value}"}


@dataclass
class HarvestBatch:
    """Everything one harvest found: nodes, relations, and what could not be harvested."""

    nodes: list[NodeSpec] = field(default_factory=list)
    relations: list[RelationSpec] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Harvester(Protocol):
    """Reads one kind of source and describes it as catalog nodes and relations."""

    type: SourceType

    async def harvest(self, ctx: HarvestContext) -> HarvestBatch:
        """Read ``ctx.location`` and return the full snapshot it describes.

        Raise a ``CatalogError`` (``SourceUnavailableError``, ``BadSourceDataError``...) when the
        source cannot be read at all; report what is merely odd as warnings in the batch.
        """
        ...


class BatchBuilder:
    """Collects nodes and relations for a batch, keeping them within the metamodel's limits."""

    def __init__(self, ctx: HarvestContext) -> None:
        self.ctx = ctx
        self.ids = IdAllocator()
        self.nodes: dict[str, NodeSpec] = {}
        self.relations: dict[tuple[str, str, str], RelationSpec] = {}
        self.warnings: list[str] = []

    def claim(self, kind: Kind, *names: str, origin: str, qualifier: str | None = None) -> str:
        """A new id ``<prefix>:<source-key>.<slug>.<slug>`` for the thing named ``names``."""
        key = make_key(self.ctx.key, *(slugify(n) for n in names))
        return self.ids.claim(kind.prefix, key, origin, qualifier=qualifier)

    def warn(self, message: str) -> None:
        """Record something that could not be harvested (or was harvested differently)."""
        self.warnings.append(message)

    def node(
        self,
        node_id: str,
        name: str,
        *,
        origin: str,
        description: str | None = None,
        tags: Iterable[str] = (),
        lifecycle: Lifecycle = Lifecycle.ACTIVE,
        owner: str | None = None,
        properties: Mapping[str, Any] | None = None,
        attributes: Iterable[Mapping[str, Any]] | None = None,
    ) -> bool:
        """Add a node, trimming what exceeds the limits (with a warning); False if refused."""
        name = (name or "").strip() or node_id.partition(":")[2]
        if len(name) > MAX_NAME:
            self.warn(f"{origin}: name shortened to {MAX_NAME} characters")
            name = name[: MAX_NAME - 1] + "…"
        description = (description or "").strip() or None
        if description is not None and len(description) > MAX_TEXT:
            self.warn(f"{origin}: description shortened to {MAX_TEXT} characters")
            description = description[: MAX_TEXT - 1] + "…"
        clean_tags = _clean_tags(tags, origin, self.warn)
        props = {k: v for k, v in (properties or {}).items() if v is not None and v != []}
        data: dict[str, Any] = {
            "id": node_id,
            "name": name,
            "description": description,
            "tags": clean_tags,
            "lifecycle": lifecycle,
            "owner": owner,
            "properties": props,
        }
        if attributes is not None:
            data["attributes"] = _clean_attributes(attributes, origin, self.warn)
        try:
            spec = NodeSpec.model_validate(data).at(origin)
        except ValidationError as err:
            self.warn(f"{origin}: not harvested ({_format(err)})")
            return False
        self.nodes[node_id] = spec
        return True

    def relate(
        self,
        src: str,
        rtype: RelationType,
        dst: str,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Add a relation (the last one given for the same endpoints and type wins)."""
        data: dict[str, Any] = {"from": src, "type": rtype, "to": dst}
        if properties:
            data["properties"] = dict(properties)
        self.relations[(src, rtype.value, dst)] = RelationSpec.model_validate(data)

    def build(self) -> HarvestBatch:
        """The batch, with id collisions reported among the warnings."""
        return HarvestBatch(
            nodes=list(self.nodes.values()),
            relations=list(self.relations.values()),
            warnings=[*self.warnings, *self.ids.collisions],
        )


def _clean_tags(tags: Iterable[str], origin: str, warn: Any) -> list[str]:
    out: list[str] = []
    for tag in tags:
        tag = str(tag).strip()
        if not tag or tag in out:
            continue
        if len(tag) > 100:
            warn(f"{origin}: tag {tag[:40]!r}... is longer than 100 characters; dropped")
            continue
        out.append(tag)
    if len(out) > MAX_TAGS:
        warn(f"{origin}: {len(out)} tags; only the first {MAX_TAGS} were kept")
        out = out[:MAX_TAGS]
    return out


def _clean_attributes(
    attributes: Iterable[Mapping[str, Any]], origin: str, warn: Any
) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    limits = {"name": 200, "type": 200, "description": MAX_TEXT, "classification": 100}
    for attr in attributes:
        clean: dict[str, Any] = {}
        for name, limit in limits.items():
            value = attr.get(name)
            if value is None or value == "":
                continue
            value = str(value)
            if len(value) > limit:
                value = value[: limit - 1] + "…"
            clean[name] = value
        if "name" not in clean:
            continue
        if clean["name"] in out:
            warn(f"{origin}: attribute {clean['name']!r} appears twice; the first is kept")
            continue
        out[clean["name"]] = clean
    if len(out) > 2000:
        warn(f"{origin}: {len(out)} attributes; only the first 2000 were kept")
    return list(out.values())[:2000]


__all__ = [
    "BatchBuilder",
    "HarvestBatch",
    "HarvestContext",
    "Harvester",
    "SourceSpec",
    "SourceType",
]
