"""Headers of the serving infrastructure (server, via, CDN and mesh headers) became noise by
default, listed on each upstream where a team can remove them; existing upstreams get them too."""

from django.db import migrations

INFRASTRUCTURE_HEADERS = (
    "server",
    "via",
    "x-powered-by",
    "cf-*",
    "x-envoy-*",
    "x-amz-*",
    "x-served-by",
    "x-cache",
    "x-cache-hits",
    "x-timer",
    "x-kong-*",
    "x-vercel-*",
    "fly-request-id",
    "strict-transport-security",
    "x-forwarded-*",
    "nel",
    "report-to",
)


def add_infrastructure_headers(apps, schema_editor):
    Upstream = apps.get_model("migrations_audit", "Upstream")
    for upstream in Upstream.objects.all():
        listed = list(upstream.volatile_headers or [])
        missing = [name for name in INFRASTRUCTURE_HEADERS if name not in listed]
        if missing:
            upstream.volatile_headers = listed + missing
            upstream.save(update_fields=["volatile_headers"])


class Migration(migrations.Migration):
    dependencies = [("migrations_audit", "0003_replay_redundant_indexes")]

    operations = [migrations.RunPython(add_infrastructure_headers, migrations.RunPython.noop)]
