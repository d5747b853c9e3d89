"""Encryption at rest for OAuth tokens and ``application_token``.

Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``: authenticated, versioned, and
MultiFernet gives key rotation for free. Keys come from configuration; when none is set a
key is derived from ``SECRET_KEY`` with HKDF so a fresh checkout still encrypts.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from cryptography.fernet import MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_cipher: MultiFernet | None = None


def derive_key(secret: str) -> str:
    """A stable Fernet key derived from an arbitrary secret string."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"b24app-tokens", info=b"fernet")
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode())).decode()


def configure(keys: str, secret_key: str) -> None:
    """Install the process-wide cipher (called once by :func:`b24app.context.build_services`)."""
    global _cipher
    key_list = [k.strip() for k in keys.split(",") if k.strip()] or [derive_key(secret_key)]
    _cipher = MultiFernet([Fernet(k) for k in key_list])


def cipher() -> MultiFernet:
    if _cipher is None:
        raise RuntimeError("encryption is not configured; build the services first")
    return _cipher


def encrypt(value: str) -> str:
    return cipher().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    try:
        return cipher().decrypt(value.encode()).decode()
    except InvalidToken as exc:  # wrong key: fail loudly, never return ciphertext as a token
        raise RuntimeError("stored secret cannot be decrypted with the configured keys") from exc


class EncryptedString(TypeDecorator[str]):
    """A string column stored encrypted; the Python side only ever sees plaintext."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else decrypt(value)
