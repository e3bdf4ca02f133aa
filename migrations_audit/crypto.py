"""Encryption at rest for the few secrets the product must keep (replay credentials)."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    key = settings.MIGRATION_AUDIT_ENCRYPTION_KEY
    if not key:
        key = base64.urlsafe_b64encode(
            hashlib.sha256(b"replay-credentials:" + settings.SECRET_KEY.encode()).digest()
        )
    return Fernet(key)


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError(
            "the stored credential cannot be decrypted with the current encryption key"
        ) from None
