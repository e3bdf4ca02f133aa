"""Keys of their own: rotating them (or SECRET_KEY) keeps credentials readable and clients known."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.utils import timezone

from migrations_audit import crypto, services
from migrations_audit.capture.recording import CapturedExchange
from migrations_audit.capture.services import exchanges_record
from migrations_audit.models import Client, Exchange, Upstream
from migrations_audit.secrets import key_fingerprint

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_credentials_survive_a_secret_key_rotation(settings, team_a):
    settings.MIGRATION_AUDIT_ENCRYPTION_KEYS = []
    upstream = services.upstream_create(
        team=team_a, name="U", slug="u", base_url="http://127.0.0.1:9", replay_key="sk-ant-kept"
    )
    old_secret = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "n" * 50, [old_secret]
    assert services.upstream_replay_key(upstream=Upstream.objects.get(pk=upstream.pk)) == "sk-ant-kept"


def test_encryption_keys_rotate_and_the_command_re_encrypts(settings, team_a):
    settings.MIGRATION_AUDIT_ENCRYPTION_KEYS = [OLD]
    upstream = services.upstream_create(
        team=team_a, name="U", slug="u", base_url="http://127.0.0.1:9", replay_key="sk-ant-kept"
    )
    settings.MIGRATION_AUDIT_ENCRYPTION_KEYS = [NEW, OLD]
    call_command("rotate_keys")
    settings.MIGRATION_AUDIT_ENCRYPTION_KEYS = [NEW]  # the old key can go now
    assert crypto.decrypt(Upstream.objects.get(pk=upstream.pk).replay_key_encrypted) == "sk-ant-kept"
    settings.MIGRATION_AUDIT_ENCRYPTION_KEYS = [OLD]
    with pytest.raises(ValueError, match="cannot be decrypted"):
        crypto.decrypt(Upstream.objects.get(pk=upstream.pk).replay_key_encrypted)


def _send(upstream, key):
    exchanges_record(
        upstream=upstream,
        source="proxy",
        captured=[
            CapturedExchange(
                method="POST",
                path="/v1/messages",
                request_headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                request_body=b"{}",
                started_at=timezone.now(),
                status=200,
            )
        ],
    )


def test_a_client_keeps_its_identity_when_the_fingerprint_key_rotates(settings, upstream_a):
    settings.MIGRATION_AUDIT_FINGERPRINT_KEYS = ["old-fingerprint-key-" + "x" * 20]
    _send(upstream_a, "sk-ant-client-one")
    [client] = Client.objects.filter(upstream=upstream_a)
    settings.MIGRATION_AUDIT_FINGERPRINT_KEYS = [
        "new-fingerprint-key-" + "y" * 20,
        "old-fingerprint-key-" + "x" * 20,
    ]
    _send(upstream_a, "sk-ant-client-one")
    [same] = Client.objects.filter(upstream=upstream_a)
    assert same.pk == client.pk
    assert same.identity == key_fingerprint("sk-ant-client-one") != client.identity
    assert Exchange.objects.filter(client=same).count() == 2
