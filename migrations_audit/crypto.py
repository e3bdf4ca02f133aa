"""Encryption at rest for the few secrets the product must keep (replay credentials).

Keys rotate: MIGRATION_AUDIT_ENCRYPTION_KEYS lists the current key first and the previous ones
after it; anything encrypted under a previous key still decrypts, and `credentials_rotate`
re-encrypts it under the current one.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


def _derived(secret_key: str) -> bytes:
    return base64.urlsafe_b64encode(hashlib.sha256(b"replay-credentials:" + secret_key.encode()).digest())


def _fernet() -> MultiFernet:
    keys = list(settings.MIGRATION_AUDIT_ENCRYPTION_KEYS) or [
        _derived(secret) for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
    ]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError(
            "the stored credential cannot be decrypted with the current encryption key"
        ) from None


def credentials_rotate() -> int:
    """Re-encrypt every stored replay credential under the current key; returns how many."""
    from migrations_audit.models import Upstream

    fernet = _fernet()
    rotated = 0
    for upstream in Upstream.objects.exclude(replay_key_encrypted="").only("pk", "replay_key_encrypted"):
        try:
            token = fernet.rotate(upstream.replay_key_encrypted.encode()).decode()
        except InvalidToken:
            raise ValueError(f"the replay credential of upstream {upstream.pk} cannot be decrypted") from None
        Upstream.objects.filter(pk=upstream.pk).update(replay_key_encrypted=token)
        rotated += 1
    return rotated
