"""Standard Webhooks signing: ``whsec_`` secrets, ``v1,`` HMAC-SHA256 signatures, and how the
hub keeps the secrets it must sign with.

The signature is ``v1,`` and the base64 HMAC-SHA256, keyed by the secret's bytes, of
``{webhook-id}.{webhook-timestamp}.{body}`` (https://www.standardwebhooks.com). It is a few
lines of the standard library, so the hub signs itself; the ``standardwebhooks`` package (the
reference implementation) verifies the signatures in the tests.

The receiver verifies with the raw secret, so the hub must be able to read it back: a hash
would not do. With ``CAPAHUB_WEBHOOK_SECRET_KEY`` set, secrets are stored encrypted (Fernet:
AES-128-CBC and HMAC-SHA256, from ``cryptography``, which PyJWT[crypto] brings), so whoever
reads the database alone cannot forge deliveries; without it they are stored as given, and
the database must be guarded like the key would be (docs/webhooks.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from metadata.errors import InvalidInputError

PREFIX = "whsec_"
#: The Standard Webhooks range for a secret's length, in bytes.
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64


def generate_secret() -> str:
    """A new secret: ``whsec_`` and the base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_bytes(secret: str, *, field: str = "secret") -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret.

    Raises:
        InvalidInputError: not of that form, or not 24-64 bytes.
    """
    if not secret.startswith(PREFIX) or len(secret) > 120:
        raise InvalidInputError(
            f"{field}: a webhook secret is 'whsec_' and the base64 of 24-64 random bytes "
            "(leave it out and the hub makes one)",
            field=field,
        )
    try:
        raw = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(
            f"{field}: the part after 'whsec_' is not base64", field=field
        ) from None
    if not MIN_SECRET_BYTES <= len(raw) <= MAX_SECRET_BYTES:
        raise InvalidInputError(
            f"{field}: the secret is {len(raw)} bytes; use 24-64 (e.g. 32 random bytes)",
            field=field,
        )
    return raw


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of one delivery attempt."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class SecretBox:
    """Seals secrets for storage (``fernet:``) when a key is configured, else stores them as
    given (``plain:``); opens both forms."""

    def __init__(self, key: str = "") -> None:
        self._fernet = None
        if key:
            from cryptography.fernet import Fernet

            # Any passphrase: its SHA-256 is the Fernet key (32 bytes, url-safe base64).
            derived = base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest())
            self._fernet = Fernet(derived)

    def seal(self, secret: str) -> str:
        """The stored form of ``secret``."""
        if self._fernet is None:
            return "plain:" + secret
        return "fernet:" + self._fernet.encrypt(secret.encode()).decode()

    def open(self, stored: str) -> str:
        """The secret of a stored form.

        Raises:
            ValueError: sealed with a key this hub does not have (none, or another).
        """
        form, _, value = stored.partition(":")
        if form == "plain":
            return value
        if self._fernet is None:
            raise ValueError(
                "the secret is encrypted and CAPAHUB_WEBHOOK_SECRET_KEY is not set on this hub"
            )
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken:
            raise ValueError(
                "the secret was encrypted with another CAPAHUB_WEBHOOK_SECRET_KEY"
            ) from None


__all__ = ["PREFIX", "SecretBox", "generate_secret", "secret_bytes", "sign"]
