"""Settings for Migration Audit.

Everything that differs between a laptop and production comes from the environment (see README,
"Running in production"). The defaults are the embedded ones: SQLite in WAL mode and a Celery broker
on the filesystem, so `make run` needs no server.
"""

import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from dashboard.env import env_bool, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MIGRATION_AUDIT_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _local_secret_key() -> str:
    """A secret kept in var/ so that fingerprints stay stable across restarts of a local install."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or _local_secret_key()
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "migrations_audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
ASGI_APPLICATION = "dashboard.asgi.application"
WSGI_APPLICATION = "dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "migrations_audit.context_processors.navigation",
            ],
        },
    },
]

# Database: SQLite in WAL mode unless DATABASE_URL says otherwise.
DATABASE_URL = env_url(
    "DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}", schemes=("sqlite", "postgres", "pgsql")
)
# Connections are kept a minute (and checked before reuse): a worker runs many short tasks, and a new
# PostgreSQL connection per task would cost more than the task.
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web server, the proxy recorder and the workers write at once; IMMEDIATE
        # transactions take the write lock up front instead of failing on upgrade.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
# Failed logins allowed per username and per client address in LOGIN_FAILURE_WINDOW seconds.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_FAILURE_WINDOW = env_int("LOGIN_FAILURE_WINDOW", 300, minimum=1)
# Behind reverse proxies, the header they set with the client's address (X-Forwarded-For) and how many
# of them there are: the limit keys on the address the outermost one saw. Unset: REMOTE_ADDR, since a
# header anyone can send must never decide whose attempts count together.
TRUSTED_PROXY_HEADER = env_str("TRUSTED_PROXY_HEADER").strip()
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1, minimum=1)
LOGIN_REDIRECT_URL = "migrations_audit:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("STATIC_MANIFEST", not DEBUG)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = VAR_DIR / "media"
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 10 * 1024 * 1024, minimum=1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# Cache: per process by default; Redis (CACHE_URL=redis://...) so that limits hold across processes.
CACHE_URL = env_str("CACHE_URL")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# Security: production values when DEBUG is off; HTTPS ones are opt-in behind a TLS proxy.
# Scripts only from our own static files: recorded bodies shown on pages can never run.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None

# Celery: a broker on the filesystem by default, Redis or RabbitMQ from the environment.
BROKER_DIR = Path(env_str("MIGRATION_AUDIT_BROKER_DIR", str(VAR_DIR / "broker")))
CELERY_BROKER_URL = env_url(
    "CELERY_BROKER_URL", "filesystem://", schemes=("filesystem", "redis", "amqp", "sqla")
)
if CELERY_BROKER_URL.startswith("filesystem"):
    for folder in ("queue", "processed", "control"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }
    # Messages appear in the queue whole (see dashboard/broker.py).
    CELERY_BROKER_TRANSPORT = "dashboard.broker:FilesystemTransport"
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
if CELERY_BROKER_URL.startswith("redis://"):
    # Survives a broker restart (see dashboard/broker.py).
    CELERY_BROKER_TRANSPORT = "dashboard.broker:RedisTransport"
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A replay task is a batch of about a hundred requests: a worker that reserved several would hold
# them while other workers ran out of work at the end of a run.
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 1, minimum=1)
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = TIME_ZONE

# Email: the console on a laptop; SMTP when EMAIL_HOST is set (Django 6.1 MAILERS).
EMAIL_HOST_NAME = env_str("EMAIL_HOST")
if EMAIL_HOST_NAME:
    _DEFAULT_MAILER = {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": EMAIL_HOST_NAME,
            "port": env_int("EMAIL_PORT", 587, minimum=1),
            "username": env_str("EMAIL_HOST_USER"),
            "password": env_str("EMAIL_HOST_PASSWORD"),
            "use_tls": env_bool("EMAIL_USE_TLS", True),
        },
    }
else:
    env_int("EMAIL_PORT", 587, minimum=1)  # still validated, so a typo is caught before it matters
    _DEFAULT_MAILER = {"BACKEND": env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")}
    if env_str("EMAIL_FILE_PATH"):
        _DEFAULT_MAILER["BACKEND"] = "django.core.mail.backends.filebased.EmailBackend"
        _DEFAULT_MAILER["OPTIONS"] = {"file_path": env_str("EMAIL_FILE_PATH")}
MAILERS = {"default": _DEFAULT_MAILER}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Migration Audit <audit@localhost>")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

# Product settings.
# Headers masked before anything is stored, besides the key headers (x-api-key, Authorization,
# anthropic-api-key, x-goog-api-key, api-key), which are replaced by a keyed fingerprint, and any
# header named as a secret field or ending in -token, -secret, -password or -api-key.
MIGRATION_AUDIT_SECRET_HEADERS = env_list(
    "MIGRATION_AUDIT_SECRET_HEADERS",
    [
        "x-api-key",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-auth-token",
        "api-key",
        "anthropic-api-key",
        "x-goog-api-key",
        "ocp-apim-subscription-key",
    ],
)
# JSON fields, query parameters and form fields masked by name (without case; "-" and "_" alike).
MIGRATION_AUDIT_SECRET_FIELDS = env_list(
    "MIGRATION_AUDIT_SECRET_FIELDS",
    [
        "key",
        "api_key",
        "apikey",
        "x_api_key",
        "access_token",
        "refresh_token",
        "id_token",
        "auth_token",
        "session_token",
        "token",
        "secret",
        "client_secret",
        "secret_key",
        "private_key",
        "access_key",
        "password",
        "passwd",
    ],
)
# Keys of their own, each with rotation, so that rotating SECRET_KEY neither makes stored replay
# credentials unreadable nor re-identifies every client. Each list: the current key first, then
# the previous ones (still read, and re-keyed on sight). Defaults: derived from SECRET_KEY and
# SECRET_KEY_FALLBACKS, as before these settings existed.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
# Fernet keys encrypting replay credentials at rest (`manage.py rotate_keys` re-encrypts them).
MIGRATION_AUDIT_ENCRYPTION_KEYS = env_list(
    "MIGRATION_AUDIT_ENCRYPTION_KEYS", [k for k in [env_str("MIGRATION_AUDIT_ENCRYPTION_KEY")] if k]
)
# HMAC keys of API-key fingerprints (the identity of a client that does not declare itself).
MIGRATION_AUDIT_FINGERPRINT_KEYS = env_list(
    "MIGRATION_AUDIT_FINGERPRINT_KEYS", [SECRET_KEY, *SECRET_KEY_FALLBACKS]
)
# Where upstreams may point (host names, *.example.com, IP addresses, CIDRs): checked when an upstream
# is saved and on the address of every connection the proxy and the workers make (see
# migrations_audit/upstream_guard.py). Loopback and private addresses must be listed as networks.
MIGRATION_AUDIT_UPSTREAM_HOSTS = env_list("MIGRATION_AUDIT_UPSTREAM_HOSTS", ["api.anthropic.com"])
# Where report webhooks may be delivered, in the same form (Slack's incoming webhooks by default).
MIGRATION_AUDIT_WEBHOOK_HOSTS = env_list("MIGRATION_AUDIT_WEBHOOK_HOSTS", ["hooks.slack.com"])
# Upstream timeouts (seconds): connecting (proxy and replays); the proxy's wait for an answer to start
# and between the reads of a non-streaming answer; and between the chunks of an event stream.
MIGRATION_AUDIT_UPSTREAM_CONNECT_TIMEOUT = env_int("MIGRATION_AUDIT_UPSTREAM_CONNECT_TIMEOUT", 10, minimum=1)
MIGRATION_AUDIT_PROXY_TIMEOUT = env_int("MIGRATION_AUDIT_PROXY_TIMEOUT", 120, minimum=1)
MIGRATION_AUDIT_PROXY_STREAM_IDLE_TIMEOUT = env_int(
    "MIGRATION_AUDIT_PROXY_STREAM_IDLE_TIMEOUT", 300, minimum=1
)
MIGRATION_AUDIT_MAX_BODY_BYTES = env_int("MIGRATION_AUDIT_MAX_BODY_BYTES", 32 * 1024 * 1024, minimum=1024)
# The proxy streams every response whole to its client, but records at most this much of it (the
# exchange is marked truncated past it, and not diffed).
MIGRATION_AUDIT_RECORD_MAX_BYTES = env_int("MIGRATION_AUDIT_RECORD_MAX_BYTES", 8 * 1024 * 1024, minimum=1024)
MIGRATION_AUDIT_MAX_HEADERS = env_int("MIGRATION_AUDIT_MAX_HEADERS", 200, minimum=16)
# Nesting past this depth is refused in NDJSON lines and HAR entries, and shown or masked as text
# elsewhere: real API bodies nest a few levels, hostile ones thousands (past Python's stack).
MIGRATION_AUDIT_MAX_JSON_DEPTH = env_int("MIGRATION_AUDIT_MAX_JSON_DEPTH", 100, minimum=8)
# One NDJSON request to the ingest API, in bytes (each line, like each HAR entry, is held to
# MIGRATION_AUDIT_MAX_BODY_BYTES).
MIGRATION_AUDIT_MAX_INGEST_BYTES = env_int("MIGRATION_AUDIT_MAX_INGEST_BYTES", 512 * 2**20, minimum=1024)
# One header (name and value) and the whole header block: larger requests are refused (431) before
# anything is forwarded or stored; the HTTP server (dashboard.server) stops reading past the block.
MIGRATION_AUDIT_MAX_HEADER_BYTES = env_int("MIGRATION_AUDIT_MAX_HEADER_BYTES", 16 * 1024, minimum=1024)
MIGRATION_AUDIT_MAX_HEADER_BLOCK_BYTES = env_int(
    "MIGRATION_AUDIT_MAX_HEADER_BLOCK_BYTES", 64 * 1024, minimum=MIGRATION_AUDIT_MAX_HEADER_BYTES
)
# Seconds a client has to send its headers (from connecting, or from the first byte of a request) and
# then its body: a slow client is answered 408 and disconnected instead of holding a connection.
MIGRATION_AUDIT_HEADER_TIMEOUT = env_int("MIGRATION_AUDIT_HEADER_TIMEOUT", 30, minimum=1)
MIGRATION_AUDIT_BODY_TIMEOUT = env_int("MIGRATION_AUDIT_BODY_TIMEOUT", 60, minimum=1)
# The proxy's recorder: exchanges it may hold while the database is slow or away (more are dropped and
# counted), and how often it stores its recorded/dropped/failed totals for the dashboard.
MIGRATION_AUDIT_RECORDER_MAX_PENDING = env_int("MIGRATION_AUDIT_RECORDER_MAX_PENDING", 10_000, minimum=1)
MIGRATION_AUDIT_RECORDER_REPORT_SECONDS = env_int("MIGRATION_AUDIT_RECORDER_REPORT_SECONDS", 10, minimum=1)
# Replays: tries per request (429, 529, 5xx and transport errors are retried), first backoff, timeout,
# and how long a worker holds a result before another may take it over.
REPLAY_MAX_TRIES = env_int("REPLAY_MAX_TRIES", 5, minimum=1)
REPLAY_BACKOFF_SECONDS = float(env_int("REPLAY_BACKOFF_MS", 500, minimum=1)) / 1000
REPLAY_TIMEOUT_SECONDS = env_int("REPLAY_TIMEOUT_SECONDS", 120, minimum=1)
REPLAY_LEASE_SECONDS = env_int("REPLAY_LEASE_SECONDS", 300, minimum=2)
# Exchanges per replay task (every version and repeat of each): bigger batches cost fewer queries
# per request; smaller ones spread a short run over more workers.
REPLAY_BATCH_EXCHANGES = env_int("REPLAY_BATCH_EXCHANGES", 50, minimum=1)
REPLAY_RECONCILE_SECONDS = env_int("REPLAY_RECONCILE_SECONDS", 15, minimum=1)
# Exchanges whose results a run creates per transaction: the first chunk in the request that starts
# it, the rest in the background (a run over a million exchanges starts in one short request).
REPLAY_PREPARE_CHUNK = env_int("REPLAY_PREPARE_CHUNK", 500, minimum=1)
# How often beat looks for report schedules that are due.
REPORTS_TICK_SECONDS = env_int("REPORTS_TICK_SECONDS", 30, minimum=1)
# Report deliveries (email, webhook): tries, and the first backoff (doubled each try, at most an hour).
REPORT_DELIVERY_TRIES = env_int("REPORT_DELIVERY_TRIES", 5, minimum=1)
REPORT_DELIVERY_BACKOFF_SECONDS = env_int("REPORT_DELIVERY_BACKOFF_SECONDS", 30, minimum=1)
MIGRATION_AUDIT_DEFAULT_UPSTREAM = env_str("MIGRATION_AUDIT_DEFAULT_UPSTREAM", "anthropic")
# The diff and the pages read compressed bodies decoded, up to this many bytes (a bomb is cut off).
MIGRATION_AUDIT_DECODED_BODY_LIMIT = env_int(
    "MIGRATION_AUDIT_DECODED_BODY_LIMIT", 32 * 1024 * 1024, minimum=64 * 1024
)
# Where clients reach the recording proxy (its own origin, never the dashboard's), as pages show it.
MIGRATION_AUDIT_PROXY_URL = env_str("MIGRATION_AUDIT_PROXY_URL", "http://127.0.0.1:8001").rstrip("/")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
