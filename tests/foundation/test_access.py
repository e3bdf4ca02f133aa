"""Every page but login requires a signed-in user; the admin never shows a secret."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from migrations_audit.models import Exchange

# URL names that must answer without a session: they have their own authentication or none.
PUBLIC = {"login", "migrations_audit:health", "migrations_audit:favicon"}
PUBLIC_PREFIXES = ("api",)


def every_url_name(resolver=None, namespace=""):
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from every_url_name(pattern, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}{pattern.name}", pattern


def sample_url(name, pattern):
    kwargs = {}
    for key, converter in pattern.pattern.converters.items():
        kwargs[key] = 1 if type(converter).__name__ == "IntConverter" else "sample"
    return reverse(name, kwargs=kwargs)


def test_every_page_requires_login(client, db):
    checked = 0
    for name, pattern in every_url_name():
        url = sample_url(name, pattern)
        if name in PUBLIC or url.strip("/").split("/")[0] in PUBLIC_PREFIXES:
            continue
        response = client.get(url)
        assert response.status_code == 302, f"{name} answered {response.status_code} without login"
        assert response["Location"].startswith(reverse("login")), name
        checked += 1
    assert checked >= 8


def test_login_page_and_logout(client, alice):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": "alice", "password": "alice-password"})
    assert response.status_code == 302
    assert client.get(reverse("migrations_audit:home")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("migrations_audit:home")).status_code == 302


def test_other_teams_upstream_is_not_found(client, alice, upstream_a, upstream_b):
    client.force_login(alice)
    assert client.get(reverse("migrations_audit:overview", args=[upstream_a.slug])).status_code == 200
    assert client.get(reverse("migrations_audit:overview", args=[upstream_b.slug])).status_code == 404


@pytest.mark.django_db
def test_admin_never_shows_secrets(client, upstream_a):
    from django.utils import timezone

    from migrations_audit import services
    from migrations_audit.secrets import mask_headers

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "root-password")
    client.force_login(admin)
    _, token = services.api_token_create(team=upstream_a.team, name="ci")
    exchange = Exchange.objects.create(
        upstream=upstream_a,
        started_at=timezone.now(),
        method="POST",
        path="/v1/messages",
        endpoint="POST /v1/messages",
        request_headers=mask_headers(
            {"x-api-key": "sk-ant-admin-secret", "Authorization": "Bearer sk-ant-bearer"}
        ),
        content_hash="0" * 64,
    )
    pages = [
        reverse("admin:migrations_audit_upstream_change", args=[upstream_a.pk]),
        reverse("admin:migrations_audit_exchange_change", args=[exchange.pk]),
        reverse("admin:migrations_audit_apitoken_changelist"),
        reverse("admin:migrations_audit_apitoken_change", args=[upstream_a.team.api_tokens.get().pk]),
    ]
    for url in pages:
        html = client.get(url).content.decode()
        for secret in (
            "sk-ant-replay-secret",
            upstream_a.replay_key_encrypted,
            "sk-ant-admin-secret",
            "sk-ant-bearer",
            token,
            services.api_token_hash(token),
        ):
            assert secret not in html, f"{secret[:12]}… shown on {url}"


def test_login_is_rate_limited(client, alice, settings):
    from django.core.cache import cache

    cache.clear()
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        assert client.post(reverse("login"), {"username": "alice", "password": "wrong"}).status_code == 200
    refused = client.post(reverse("login"), {"username": "alice", "password": "alice-password"})
    assert refused.status_code == 429
    assert "Too many failed attempts" in refused.content.decode()
    cache.clear()


def test_security_headers(client, db):
    response = client.get(reverse("login"))
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
