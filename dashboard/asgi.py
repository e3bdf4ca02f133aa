"""ASGI entry points: the dashboard and the recording proxy, each on an origin of its own.

`application` (port 8000 in `make run`) serves the dashboard and API through Django, and nothing else.
`proxy_application` (port 8001) is the recording proxy: `/proxy/<slug>/...` for any upstream, every
other path for the default upstream (for clients that can change only the host and port, such as
anthropic==0.2.10), and `/__audit/healthz`. What an upstream answers is never served from the
dashboard's origin, so it can neither read the dashboard's pages nor touch its cookies.
Run both with `--http dashboard.server:HttpProtocol` (header deadline and size cap).
"""

import os
import sys

from django.core.asgi import get_asgi_application

# The recorder writes batches from a thread; under the default 5 ms GIL switch interval a request
# arriving meanwhile waited up to that long for the event loop, which showed as the proxy's p99.
sys.setswitchinterval(0.001)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
django_application = get_asgi_application()

from django.conf import settings  # noqa: E402 - after Django is set up

from dashboard.server import body_deadline  # noqa: E402
from migrations_audit.capture.ingest_limit import ingest_size_limited  # noqa: E402
from migrations_audit.capture.proxy import ProxyApp  # noqa: E402

# The ingest API refuses a body past its size before Django reads it all.
application = body_deadline(
    ingest_size_limited(django_application), seconds=settings.MIGRATION_AUDIT_BODY_TIMEOUT
)
proxy_application = body_deadline(
    ProxyApp(default_slug=settings.MIGRATION_AUDIT_DEFAULT_UPSTREAM),
    seconds=settings.MIGRATION_AUDIT_BODY_TIMEOUT,
)
