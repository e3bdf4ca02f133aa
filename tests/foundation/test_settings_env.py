"""Settings come from the environment, with safe defaults and a clear message for a bad value."""

import os
import subprocess
import sys

import pytest

from tests.support.servers import PROJECT_ROOT


def settings_in_child(**env) -> subprocess.CompletedProcess:
    code = (
        "import django, json; from django.conf import settings; django.setup(); "
        "print(json.dumps({'debug': settings.DEBUG, 'engine': settings.DATABASES['default']['ENGINE'], "
        "'broker': settings.CELERY_BROKER_URL, 'hosts': settings.ALLOWED_HOSTS, "
        "'email': settings.MAILERS['default']['BACKEND']}))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "dashboard.settings", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_defaults_are_embedded():
    env = {key: "" for key in ("DATABASE_URL", "CELERY_BROKER_URL", "EMAIL_HOST")}
    result = settings_in_child(**env)
    assert result.returncode == 0, result.stderr
    assert '"engine": "django.db.backends.sqlite3"' in result.stdout
    assert '"broker": "filesystem://"' in result.stdout
    assert "console.EmailBackend" in result.stdout


def test_each_variable_is_read():
    result = settings_in_child(
        DEBUG="true",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/anything",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/3",
        ALLOWED_HOSTS="audit.example.com, other.example.com",
        EMAIL_HOST="smtp.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert '"debug": true' in result.stdout
    assert "postgresql" in result.stdout
    assert '"broker": "redis://127.0.0.1:6379/3"' in result.stdout
    assert '["audit.example.com", "other.example.com"]' in result.stdout
    assert "smtp.EmailBackend" in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG must be one of"),
        ("DATABASE_URL", "mysql://root@localhost/x", "DATABASE_URL must be a URL starting with"),
        ("CELERY_BROKER_URL", "kafka://localhost", "CELERY_BROKER_URL must be a URL starting with"),
        ("EMAIL_PORT", "twenty-five", "EMAIL_PORT must be an integer"),
        ("SECRET_KEY", "short", "SECRET_KEY must be at least 32 characters"),
        ("SECURE_HSTS_SECONDS", "-1", "SECURE_HSTS_SECONDS must be at least 0"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(variable, value, message):
    result = settings_in_child(**{variable: value})
    assert result.returncode != 0
    assert message in result.stderr
