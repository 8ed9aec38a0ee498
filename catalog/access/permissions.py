"""The permission table: which role and rights each GraphQL field needs.

This table is the one place rights are decided for an operation as a whole; ``docs/security.md``
prints it (``tests/catalog/access/test_permissions.py`` keeps the two equal), and the schema
refuses to build when a root field has no entry, so a new operation is closed until someone
writes its line here. What a write may touch once it is allowed (ownership, stewardship) is
decided by ``catalog.access.rules`` inside the write transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog.access.principal import Principal, Right, Role
from metadata.errors import NotAllowedError


@dataclass(frozen=True, slots=True)
class Rule:
    """What a field needs: a role at least ``role``, every right of ``rights``."""

    role: Role
    rights: tuple[Right, ...] = ()
    #: Further rules the field's service applies, as docs/security.md states them.
    scope: str = ""


_READ = Rule(Role.VIEWER, scope="catalog metadata")
_GRAPH = Rule(Role.VIEWER, scope="catalog metadata (graph question)")
_WRITE = Rule(
    Role.EDITOR,
    scope="only nodes the caller may write (ownership rules); stewards also the entities "
    "they steward",
)
_RECORDS = Rule(
    Role.VIEWER,
    (Right.RECORDS,),
    scope="PII attributes masked (null, listed in `masked`) without the `pii` right",
)
_ADMIN = Rule(Role.ADMIN, scope="the hub reaches out to the network or manages access")

#: GraphQL coordinate (``Type.field``) -> rule. Every root field must appear here.
PERMISSIONS: dict[str, Rule] = {
    "Query.node": _READ,
    "Query.nodes": _READ,
    "Query.systems": _READ,
    "Query.capabilities": _READ,
    "Query.dataEntities": _READ,
    "Query.history": _READ,
    "Query.search": _READ,
    "Query.impact": _GRAPH,
    "Query.path": _GRAPH,
    "Query.neighborhood": _GRAPH,
    "Query.gaps": _GRAPH,
    "Query.redundancies": _GRAPH,
    "Query.lineage": _GRAPH,
    "Query.capabilityMap": _GRAPH,
    "Query.journeyCoverage": _GRAPH,
    "Query.hotspots": _GRAPH,
    # The paged forms of graph answers: the rule of the list form each one pages.
    "Query.gapsPage": _GRAPH,
    "Query.redundanciesPage": _GRAPH,
    "Query.hotspotsPage": _GRAPH,
    "Query.catalogDiff": Rule(
        Role.VIEWER, scope="catalog metadata: what changed between two instants (no actors)"
    ),
    "Query._entities": Rule(Role.VIEWER, scope="catalog metadata (federation entry point)"),
    "Query._service": Rule(Role.VIEWER, scope="the subgraph's SDL (federation entry point)"),
    "Query.records": _RECORDS,
    "DataEntity.records": _RECORDS,
    "Query.auditLog": Rule(Role.ADMIN, scope="every recorded change with its actor"),
    "Query.apiTokens": Rule(Role.ADMIN, scope="hub tokens (never their text)"),
    "Mutation.upsertNode": _WRITE,
    "Mutation.registerCapability": _WRITE,
    "Mutation.relate": Rule(
        Role.EDITOR,
        scope="when the caller may write the relation's `from` node (OWNS and STEWARDS: "
        "both nodes); stewards also REPRESENTS mappings of entities they steward",
    ),
    "Mutation.unrelate": Rule(
        Role.EDITOR,
        scope="when the caller may write the relation's `from` node (OWNS and STEWARDS: "
        "both nodes); stewards also REPRESENTS mappings of entities they steward",
    ),
    "Mutation.retire": _WRITE,
    "Mutation.applyCatalog": Rule(
        Role.EDITOR, scope="every node and relation the document changes, as for upsertNode"
    ),
    "Mutation.registerSource": _ADMIN,
    "Mutation.harvest": _ADMIN,
    "Mutation.createApiToken": _ADMIN,
    "Mutation.revokeApiToken": _ADMIN,
    "Query.webhooks": Rule(Role.ADMIN, scope="registered webhooks (never their secrets)"),
    "Query.webhookDeliveries": Rule(Role.ADMIN, scope="a webhook's delivery log"),
    "Mutation.registerWebhook": _ADMIN,
    "Mutation.pauseWebhook": _ADMIN,
    "Mutation.resumeWebhook": _ADMIN,
    "Mutation.deleteWebhook": _ADMIN,
    "Subscription.catalogChanged": Rule(
        Role.VIEWER,
        scope="catalog metadata: committed node and relation changes with their actor; the "
        "token is checked at connect and again while the subscription lives",
    ),
}


def check(principal: Principal, coordinate: str) -> None:
    """Let ``principal`` use the field at ``coordinate`` or raise ``NotAllowedError``.

    A coordinate without a rule is refused: nothing is open unless the table says so.
    """
    if principal.unrestricted:
        return
    rule = PERMISSIONS.get(coordinate)
    if rule is None:
        raise NotAllowedError(f"{coordinate}: no permission rule covers this field")
    if not principal.at_least(rule.role):
        raise NotAllowedError(
            f"{coordinate}: needs the {rule.role.value} role or above; "
            f"{principal.describe()} may not use it"
        )
    for right in rule.rights:
        if not principal.has(right):
            raise NotAllowedError(
                f"{coordinate}: needs the {right.value} right; {principal.describe()} "
                f"does not hold it"
            )


def table_markdown() -> str:
    """The table as docs/security.md prints it (one row per field, in table order)."""
    lines = [
        "| field | role at least | rights | further rules |",
        "|---|---|---|---|",
    ]
    for coordinate, rule in PERMISSIONS.items():
        rights = ", ".join(f"`{r.value}`" for r in rule.rights) or "-"
        lines.append(f"| `{coordinate}` | {rule.role.value} | {rights} | {rule.scope} |")
    return "\n".join(lines) + "\n"


__all__ = ["PERMISSIONS", "Rule", "check", "table_markdown"]
