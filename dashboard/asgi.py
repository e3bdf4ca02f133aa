"""ASGI entry points: the dashboard (with the proxy at /proxy/<slug>/) on one port."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
application = get_asgi_application()
