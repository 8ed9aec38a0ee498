"""Access control: identities (hub tokens, OpenID Connect JWTs), the permission table, masking."""

from catalog.access.principal import Principal, Right, Role, highest_role, unrestricted

__all__ = ["Principal", "Right", "Role", "highest_role", "unrestricted"]
