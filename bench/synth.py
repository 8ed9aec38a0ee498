"""Generate a synthetic catalog document (CONTRACT.md, "Catalog documents") of N nodes.

The landscape is shaped like a real enterprise one, with about five relations per node:

- domains (~0.5 %) and teams (~1.5 %); most nodes have a team as ``owner``;
- systems (~5 %): PART_OF a domain, DEPENDS_ON 1-3 other systems;
- capabilities (~40 %) in a 3-level hierarchy (L1 PART_OF a domain, L2 PART_OF an L1, L3 PART_OF
  an L2), each PROVIDED by 1-2 systems (about 2 % by none: the gaps analyses look for), READS 1-3
  and WRITES 1-3 entities; about 30 % DEPEND_ON another capability;
- data entities (~30 %) with 3-12 attributes: canonical ones (MASTERED by a system, STORED by 0-2,
  PART_OF a domain, often STEWARDED by a team, 0-3 REFERENCES between them) and physical ones
  (``entity:<system>.<name>``) that REPRESENT a canonical entity with a field map;
- journeys (~2 %) of ordered steps (~18 %) that USE 1-3 capabilities and OCCUR_AT 1-2
  touchpoints (~3 %), which are SERVED_BY 1-2 systems.

The output is deterministic for a given ``(nodes, seed)``. Use it as a library::

    from bench.synth import generate_document
    doc = generate_document(10_000, seed=1)

or from the command line::

    python bench/synth.py --nodes 10000 --out /tmp/synth.json
    python bench/synth.py --nodes 100000 --out /tmp/synth.json --parts 3  # /tmp/synth.{1,2,3}.json
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

#: Share of each kind in the landscape; capabilities absorb the rounding.
SHARES = {
    "domain": 0.005,
    "team": 0.015,
    "system": 0.05,
    "entity": 0.30,
    "journey": 0.02,
    "step": 0.18,
    "touchpoint": 0.03,
}
#: The hub refuses larger documents (catalog/specs.py).
MAX_DOCUMENT_BYTES = 50_000_000
#: Share of capabilities provided by no system (a realistic gap rate).
UNPROVIDED = 0.02
#: Share of data entities that are physical copies REPRESENTING a canonical one.
PHYSICAL = 0.3

_DOMAINS = [
    "sales", "marketing", "commerce", "service", "finance", "logistics", "hr", "procurement",
    "manufacturing", "data-analytics", "risk", "legal", "it", "product", "partner",
]  # fmt: skip
_VERBS = [
    "manage", "capture", "track", "plan", "forecast", "approve", "publish", "reconcile",
    "allocate", "price", "segment", "onboard", "notify", "invoice", "score", "route",
    "schedule", "validate", "archive", "analyse", "enrich", "match", "settle", "audit",
]  # fmt: skip
_NOUNS = [
    "customer", "order", "product", "invoice", "payment", "shipment", "return", "campaign",
    "lead", "contract", "supplier", "asset", "employee", "case", "consent", "loyalty",
    "inventory", "price", "promotion", "store", "warehouse", "claim", "subscription", "quote",
    "account", "voucher", "review", "budget", "ledger", "delivery", "catalogue", "basket",
]  # fmt: skip
_ADJECTIVES = [
    "global", "digital", "retail", "b2b", "online", "regional", "central", "mobile",
    "partner", "legacy", "cloud", "core", "self-service", "omnichannel", "realtime",
]  # fmt: skip
_SYSTEM_KINDS = [
    "crm", "erp", "cdp", "pim", "oms", "wms", "dwh", "cms", "dxp", "pos", "billing",
    "ticketing", "mdm", "esb", "iam", "bi", "chatbot", "webshop", "app", "tms",
]  # fmt: skip
_VENDORS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell"]
_HOSTING = ["saas", "on-prem", "aws", "azure", "gcp"]
_TAGS = [
    "core", "customer-facing", "internal", "regulated", "gdpr", "pci", "strategic",
    "commodity", "differentiating", "batch", "realtime", "api", "legacy", "cloud", "kpi",
]  # fmt: skip
_ATTR_NAMES = [
    "id", "number", "name", "email", "phone", "status", "type", "amount", "currency",
    "created_at", "updated_at", "country", "city", "postal_code", "street", "birthdate",
    "quantity", "unit_price", "discount", "channel", "segment", "score", "language", "note",
    "external_ref", "valid_from", "valid_to", "owner", "category", "tax_rate",
]  # fmt: skip
_ATTR_TYPES = ["string", "integer", "decimal", "date", "timestamp", "boolean", "enum"]
_CLASSIFICATIONS = [None, None, "INTERNAL", "PII", "CONFIDENTIAL", "PUBLIC"]
_TOUCHPOINTS = [
    "web", "app", "store", "email", "call-center", "chat", "kiosk", "social", "partner-portal",
    "sms", "marketplace", "field-sales",
]  # fmt: skip
_STAGES = [
    "discover", "consider", "compare", "buy", "pay", "receive", "use", "get-help", "return",
    "renew", "recommend", "register",
]  # fmt: skip


def _title(key: str) -> str:
    return key.replace("-", " ").replace(".", " ").replace("_", " ").title()


def _counts(n: int) -> dict[str, int]:
    """Nodes per kind for a landscape of ``n`` nodes (at least one of each base kind)."""
    out = {k: max(1, round(n * share)) for k, share in SHARES.items()}
    out["capability"] = max(3, n - sum(out.values()))
    return out


class _Builder:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.nodes: list[dict[str, Any]] = []
        self.relations: list[dict[str, Any]] = []
        self.used: set[str] = set()

    def key(self, base: str, prefix: str) -> str:
        """A unique key from ``base``: a counter suffix keeps it unique and short."""
        key = base[:100]
        i = 2
        while f"{prefix}:{key}" in self.used:
            key = f"{base[:100]}-{i}"
            i += 1
        self.used.add(f"{prefix}:{key}")
        return f"{prefix}:{key}"

    def node(self, node_id: str, name: str, **fields: Any) -> str:
        node = {"id": node_id, "name": name}
        node.update({k: v for k, v in fields.items() if v is not None})
        self.nodes.append(node)
        return node_id

    def rel(self, src: str, rtype: str, dst: str, properties: dict[str, Any] | None = None) -> None:
        rel: dict[str, Any] = {"from": src, "type": rtype, "to": dst}
        if properties:
            rel["properties"] = properties
        self.relations.append(rel)

    def tags(self, *fixed: str) -> list[str]:
        return [*fixed, *self.rng.sample(_TAGS, self.rng.randint(0, 2))]

    def sentence(self, *parts: str) -> str:
        r = self.rng
        extra = f" for {r.choice(_ADJECTIVES)} {r.choice(_NOUNS)} {r.choice(['data', 'processes'])}"
        return " ".join(parts).capitalize() + extra + "."


def generate_document(nodes: int, *, seed: int = 1) -> dict[str, Any]:
    """A catalog document of about ``nodes`` nodes (exactly ``nodes`` when >= 100), deterministic.

    Returns:
        ``{"nodes": [...], "relations": [...]}``, ready for ``json.dumps`` or ``capahub apply``.
    """
    if nodes < 20:
        raise ValueError("a synthetic landscape needs at least 20 nodes")
    rng = random.Random(seed)
    b = _Builder(rng)
    counts = _counts(nodes)

    def owner() -> str | None:
        return rng.choice(teams) if rng.random() < 0.9 else None

    domains = []
    for i in range(counts["domain"]):
        base = _DOMAINS[i % len(_DOMAINS)] + (
            f"-{i // len(_DOMAINS)}" if i >= len(_DOMAINS) else ""
        )
        domain_id = b.key(base, "domain")
        domains.append(b.node(domain_id, _title(base), description=b.sentence("business domain")))

    teams = []
    for i in range(counts["team"]):
        base = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}-team"
        team_id = b.key(base, "team")
        teams.append(
            b.node(
                team_id,
                _title(base),
                tags=b.tags("team"),
                properties={"costCenter": f"CC-{4000 + i}"},
            )
        )

    systems = []
    for _ in range(counts["system"]):
        base = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_SYSTEM_KINDS)}"
        sys_id = b.key(base, "system")
        systems.append(
            b.node(
                sys_id,
                _title(base),
                description=b.sentence("application that runs", rng.choice(_NOUNS), "workflows"),
                tags=b.tags(),
                lifecycle=rng.choices(["ACTIVE", "DEPRECATED", "PLANNED"], [90, 7, 3])[0],
                owner=owner(),
                properties={"vendor": rng.choice(_VENDORS), "hosting": rng.choice(_HOSTING)},
            )
        )
    for s in systems:
        b.rel(s, "PART_OF", rng.choice(domains))
        others = [o for o in rng.sample(systems, min(len(systems), 4)) if o != s]
        for dep in others[: rng.randint(1, 3)]:
            b.rel(s, "DEPENDS_ON", dep)

    # Entities before capabilities: capabilities read and write them.
    n_entities = counts["entity"]
    n_physical = int(n_entities * PHYSICAL)
    canonical: list[str] = []
    entities: list[str] = []
    for _ in range(n_entities - n_physical):
        base = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}"
        ent_id = b.key(base, "entity")
        attrs = _attributes(rng)
        b.node(
            ent_id,
            _title(base),
            description=b.sentence("business object describing a", base.split("-")[-1]),
            tags=b.tags("canonical"),
            owner=owner(),
            attributes=attrs,
        )
        canonical.append(ent_id)
        entities.append(ent_id)
        b.rel(ent_id, "PART_OF", rng.choice(domains))
        b.rel(rng.choice(systems), "MASTERS", ent_id)
        for store in rng.sample(systems, min(len(systems), rng.randint(0, 2))):
            b.rel(store, "STORES", ent_id)
        if rng.random() < 0.6:
            b.rel(rng.choice(teams), "STEWARDS", ent_id)
    for ent_id in canonical:
        for ref in rng.sample(canonical, min(len(canonical), rng.randint(0, 3))):
            if ref != ent_id:
                b.rel(ent_id, "REFERENCES", ref)
    for _ in range(n_physical):
        target = rng.choice(canonical)
        system = rng.choice(systems)
        base = f"{system.split(':', 1)[1]}.{target.split(':', 1)[1]}"
        ent_id = b.key(base, "entity")
        attrs = _attributes(rng)
        b.node(
            ent_id,
            _title(base),
            description=b.sentence("physical table of", system.split(":", 1)[1]),
            tags=b.tags("physical"),
            owner=owner(),
            attributes=attrs,
        )
        entities.append(ent_id)
        b.rel(system, "STORES", ent_id)
        names = [a["name"] for a in attrs]
        fields = {n: f"{n}_{rng.choice(['x', 'src', 'col'])}" for n in names[:4]}
        b.rel(ent_id, "REPRESENTS", target, {"matchKey": names[0], "fields": fields})

    capabilities = _capabilities(b, counts["capability"], domains, owner)
    for cap in capabilities:
        if rng.random() >= UNPROVIDED:
            for provider in rng.sample(systems, min(len(systems), rng.randint(1, 2))):
                b.rel(provider, "PROVIDES", cap)
        for ent in rng.sample(entities, min(len(entities), rng.randint(1, 3))):
            b.rel(cap, "READS", ent)
        for ent in rng.sample(entities, min(len(entities), rng.randint(1, 3))):
            b.rel(cap, "WRITES", ent)
        if rng.random() < 0.3:
            dep = rng.choice(capabilities)
            if dep != cap:
                b.rel(cap, "DEPENDS_ON", dep)

    touchpoints = []
    for _ in range(counts["touchpoint"]):
        base = f"{rng.choice(_TOUCHPOINTS)}-{rng.choice(_ADJECTIVES)}"
        tp_id = b.key(base, "touchpoint")
        touchpoints.append(b.node(tp_id, _title(base), tags=b.tags("channel"), owner=owner()))
        for sys_id in rng.sample(systems, min(len(systems), rng.randint(1, 2))):
            b.rel(tp_id, "SERVED_BY", sys_id)

    n_journeys = counts["journey"]
    steps_left = counts["step"]
    for j in range(n_journeys):
        base = f"{rng.choice(_VERBS)}-{rng.choice(_NOUNS)}"
        journey_id = b.key(base, "journey")
        b.node(
            journey_id,
            _title(base),
            description=b.sentence("customer journey to", base.replace("-", " a ")),
            tags=b.tags("journey"),
            owner=owner(),
        )
        n_steps = steps_left // (n_journeys - j)
        steps_left -= n_steps
        for order in range(1, n_steps + 1):
            stage = _STAGES[(order - 1) % len(_STAGES)]
            step_id = b.key(f"{journey_id.split(':', 1)[1]}.{stage}", "step")
            b.node(
                step_id,
                _title(stage),
                description=b.sentence("customer steps to", stage),
                tags=["journey-step"],
                properties={"order": order},
            )
            b.rel(step_id, "PART_OF", journey_id)
            for cap in rng.sample(capabilities, min(len(capabilities), rng.randint(1, 3))):
                b.rel(step_id, "USES", cap)
            for tp in rng.sample(touchpoints, min(len(touchpoints), rng.randint(1, 2))):
                b.rel(step_id, "OCCURS_AT", tp)

    # Relations in a random order, as merged documents would have them (not grouped by type).
    rng.shuffle(b.relations)
    return {"nodes": b.nodes, "relations": b.relations}


def _attributes(rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for name in rng.sample(_ATTR_NAMES, rng.randint(3, 12)):
        attr = {"name": name, "type": rng.choice(_ATTR_TYPES)}
        classification = rng.choice(_CLASSIFICATIONS)
        if classification:
            attr["classification"] = classification
        out.append(attr)
    return out


def _capabilities(b: _Builder, n: int, domains: list[str], owner: Any) -> list[str]:
    """An L1 > L2 > L3 hierarchy: about 6 L2 per L1 and 5 L3 per L2."""
    rng = b.rng
    n_l1 = max(1, round(n / 37))
    n_l2 = max(1, round(n * 6 / 37))
    n_l3 = n - n_l1 - n_l2
    out: list[str] = []

    def make(level: int, parent: str) -> str:
        verb, noun = rng.choice(_VERBS), rng.choice(_NOUNS)
        word = f"{noun}-management" if level == 1 else f"{verb}-{noun}"
        stem = parent.split(":", 1)[1] + "." if level > 1 else ""
        cap_id = b.key(stem + word, "capability")
        props = None
        if level == 3 and rng.random() < 0.5:
            props = {"protocol": "REST", "method": rng.choice(["GET", "POST", "PUT"]),
                     "path": f"/{noun}s", "operationId": f"{verb}{noun.title()}"}  # fmt: skip
        b.node(
            cap_id,
            _title(word),
            description=b.sentence(verb, "the", noun, "records"),
            tags=b.tags(f"L{level}"),
            owner=owner(),
            properties=props,
        )
        b.rel(cap_id, "PART_OF", parent)
        out.append(cap_id)
        return cap_id

    l1 = [make(1, rng.choice(domains)) for _ in range(n_l1)]
    l2 = [make(2, rng.choice(l1)) for _ in range(n_l2)]
    for _ in range(n_l3):
        make(3, rng.choice(l2))
    return out


def describe(doc: dict[str, Any]) -> str:
    """One line of counts: nodes per kind, relations per type, relations per node."""
    kinds = Counter(n["id"].split(":", 1)[0] for n in doc["nodes"])
    types = Counter(r["type"] for r in doc["relations"])
    n, r = len(doc["nodes"]), len(doc["relations"])
    return (
        f"{n} nodes ({', '.join(f'{k} {v}' for k, v in kinds.most_common())}); "
        f"{r} relations ({r / n:.2f} per node: "
        f"{', '.join(f'{k} {v}' for k, v in types.most_common())})"
    )


def split_document(doc: dict[str, Any], parts: int) -> list[dict[str, Any]]:
    """Cut a document into ``parts`` documents that ``capahub apply A B ...`` merges back.

    One document must stay under the hub's 50 MB limit (100,000 nodes make about 90 MB of JSON).
    Nodes and relations are dealt round-robin, so the parts come out about the same size.
    """
    return [
        {"nodes": doc["nodes"][i::parts], "relations": doc["relations"][i::parts]}
        for i in range(parts)
    ]


def dump(doc: dict[str, Any], path: Path, *, parts: int = 1) -> list[Path]:
    """Write ``doc`` as JSON (YAML when ``path`` ends in .yaml/.yml), in ``parts`` files.

    Returns:
        The files written: ``path`` itself, or ``<stem>.1<suffix>``... when split.
    """
    import orjson
    import yaml

    docs = split_document(doc, parts) if parts > 1 else [doc]
    paths = (
        [path] if parts == 1 else [path.with_suffix(f".{i + 1}{path.suffix}") for i in range(parts)]
    )
    for part, out in zip(docs, paths, strict=True):
        if out.suffix in (".yaml", ".yml"):
            out.write_text(yaml.safe_dump(part, sort_keys=False), encoding="utf-8")
        else:
            out.write_bytes(orjson.dumps(part))
        if out.stat().st_size > MAX_DOCUMENT_BYTES:
            print(
                f"warning: {out} is over 50 MB, which apply refuses; use --parts", file=sys.stderr
            )
    return paths


def main(argv: list[str] | None = None) -> None:
    """Command line: write a synthetic document and print its shape to stderr."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000, help="number of nodes (10000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--out", type=Path, required=True, help="output file (.json or .yaml)")
    parser.add_argument(
        "--parts",
        type=int,
        default=1,
        help="split into N files <stem>.1.json... (apply them together; a file must be < 50 MB)",
    )
    args = parser.parse_args(argv)
    doc = generate_document(args.nodes, seed=args.seed)
    paths = dump(doc, args.out, parts=args.parts)
    print(f"{' '.join(map(str, paths))}: {describe(doc)}", file=sys.stderr)


if __name__ == "__main__":
    main()
