"""Tokens at rest: encrypted with the configured keys, readable after a key rotation."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from b24app.storage import crypto


def test_rotation_keeps_old_rows_readable() -> None:
    """A value written with the old key is read once a new key is put first."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    crypto.configure(old, "unused")
    stored = crypto.encrypt("refresh-token-value")
    crypto.configure(f"{new},{old}", "unused")
    assert crypto.decrypt(stored) == "refresh-token-value"
    assert crypto.decrypt(crypto.encrypt("x")) == "x"


def test_a_wrong_key_fails_loudly() -> None:
    """Ciphertext is never handed out as a token when the key is wrong."""
    crypto.configure(Fernet.generate_key().decode(), "unused")
    stored = crypto.encrypt("secret")
    crypto.configure(Fernet.generate_key().decode(), "unused")
    with pytest.raises(RuntimeError, match="cannot be decrypted"):
        crypto.decrypt(stored)
