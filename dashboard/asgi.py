"""ASGI entry points.

`application` serves the dashboard and API through Django, and routes /proxy/ to the lean recording
proxy. `root_proxy_application` serves the default upstream at the root path (port 8001 in
`make run`), for clients that can change only the host and port (anthropic==0.2.10).
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

from migrations_audit.capture.ingest_limit import ingest_size_limited  # noqa: E402
from migrations_audit.capture.proxy import ProxyApp  # noqa: E402

# The ingest API refuses a body past its size before Django reads it all.
django_application = ingest_size_limited(django_application)

# The proxy, and its health endpoint with the recorder's counts.
PROXY_PATHS = ("/proxy/", "/__audit/")
proxy_application = ProxyApp()
root_proxy_application = ProxyApp(root_slug=settings.MIGRATION_AUDIT_DEFAULT_UPSTREAM)


async def application(scope, receive, send):
    if (scope["type"] == "http" and scope["path"].startswith(PROXY_PATHS)) or scope["type"] == "lifespan":
        await proxy_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)
