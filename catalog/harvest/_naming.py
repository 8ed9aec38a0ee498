"""Deterministic node keys and names for harvested things, and the PII classification rule."""

from __future__ import annotations

import hashlib
import re

from metadata.model import KEY_PATTERN

#: The longest key the metamodel accepts (``[a-z0-9][a-z0-9._-]{0,127}``).
MAX_KEY = 128

_CAMEL_1 = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_CAMEL_2 = re.compile(r"(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_KEY = re.compile(r"[^a-z0-9._-]+")
_DASHES = re.compile(r"-{2,}")

#: Attribute names (lower-cased, without '_', '-' and '.') that hold personal data.
_PII_NAMES = re.compile(
    r"(e?mail|emailaddress|phone|phonenumber|mobile|mobilenumber|msisdn|fax|"
    r"birthdate|birthday|dateofbirth|dob|ssn|socialsecuritynumber|nationalid|passport|"
    r"passportnumber|taxid|iban|firstname|lastname|fullname|givenname|familyname|surname|"
    r"street|streetaddress|postcode|postalcode|zip|zipcode|ipaddress)"
)
_PII_FORMATS = frozenset({"email", "idn-email", "phone", "date-of-birth", "ipv4", "ipv6"})


def slugify(name: str) -> str:
    """A key fragment for ``name``: camelCase split, lower-cased, other characters -> '-'.

    ``getOrderById`` -> ``get-order-by-id``, ``order_lines`` -> ``order_lines``,
    ``/orders/{id}`` -> ``orders-id``. Empty results become a short hash of the name.
    """
    text = _CAMEL_2.sub("-", _CAMEL_1.sub("-", name.strip()))
    slug = _DASHES.sub("-", _NOT_KEY.sub("-", text.lower()))
    slug = slug.strip("-._")
    return slug or "x" + _digest(name)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def make_key(source_key: str, *parts: str) -> str:
    """``<source_key>.<part>.<part>`` as a valid key, shortened with a hash when too long."""
    key = ".".join([source_key, *parts])
    if len(key) > MAX_KEY:
        # Keep the beginning readable and the whole thing unique and stable.
        key = key[: MAX_KEY - 9].rstrip("-._") + "-" + _digest(key)
    if KEY_PATTERN.fullmatch(key) is None:  # pragma: no cover - parts come from slugify
        raise ValueError(f"cannot build a key from {parts!r}")
    return key


class IdAllocator:
    """Hands out node ids, unique within one harvest, and says when two names collide."""

    def __init__(self) -> None:
        self._taken: dict[str, str] = {}
        self.collisions: list[str] = []

    def claim(self, prefix: str, key: str, origin: str, *, qualifier: str | None = None) -> str:
        """Reserve ``<prefix>:<key>``; on a collision try ``key-<qualifier>``, then ``key-2``..."""
        candidates = [key]
        if qualifier:
            candidates.append(f"{key}-{slugify(qualifier)}")
        candidates.extend(f"{key}-{n}" for n in range(2, 1000))
        first = f"{prefix}:{key}"
        for candidate in candidates:
            if len(candidate) > MAX_KEY:
                candidate = candidate[: MAX_KEY - 9].rstrip("-._") + "-" + _digest(candidate)
            node_id = f"{prefix}:{candidate}"
            if node_id not in self._taken:
                self._taken[node_id] = origin
                if node_id != first:
                    self.collisions.append(
                        f"{origin} and {self._taken[first]} both map to {first}; "
                        f"{origin} became {node_id}"
                    )
                return node_id
        raise ValueError(f"too many names map to {first}")  # pragma: no cover

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._taken


def is_pii(name: str, fmt: str | None = None) -> bool:
    """Whether an attribute is personal data, judged by its format or its name."""
    if fmt and fmt.lower() in _PII_FORMATS:
        return True
    flat = re.sub(r"[_\-. ]", "", name.lower())
    return _PII_NAMES.fullmatch(flat) is not None or flat.endswith(("email", "phone"))


def plural(count: int, one: str, many: str) -> str:
    """``"1 operation has"`` / ``"3 operations have"``."""
    return f"{count} {one if count == 1 else many}"


def classify(name: str, fmt: str | None = None) -> str | None:
    """``"PII"`` for personal data (see :func:`is_pii`), otherwise no classification."""
    return "PII" if is_pii(name, fmt) else None


__all__ = ["MAX_KEY", "IdAllocator", "classify", "is_pii", "make_key", "plural", "slugify"]
