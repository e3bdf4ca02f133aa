"""manage.py compat_report --upstream SLUG [--versions A,B] [--format json|csv|html] [--output FILE]

The compatibility report on demand, for CI pipelines: exit status 0 when no breaking finding is left
unacknowledged, 1 otherwise (a request that the target version rejects always counts).
"""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from migrations_audit.models import Upstream
from migrations_audit.reports.build import report_payload
from migrations_audit.reports.render import report_csv, report_html


class Command(BaseCommand):
    help = "Print a compatibility report between two versions of an upstream; exit 1 if something blocks."

    def add_arguments(self, parser):
        parser.add_argument("--upstream", required=True)
        parser.add_argument("--versions", help="FROM,TO (default: the upstream's baseline and target)")
        parser.add_argument("--format", choices=["json", "csv", "html"], default="json")
        parser.add_argument("--output", help="write to this file instead of standard output")

    def handle(self, *args, upstream, versions, format, output, **options):
        target = Upstream.objects.filter(slug=upstream).first()
        if target is None:
            raise CommandError(f"No upstream with slug {upstream!r}.")
        if versions:
            parts = [part.strip() for part in versions.split(",")]
            if len(parts) != 2 or not all(parts):
                raise CommandError("--versions takes two versions: FROM,TO")
            version_from, version_to = parts
        else:
            version_from, version_to = target.baseline_version, target.target_version
        known = set(target.versions.values_list("name", flat=True))
        unknown = [version for version in (version_from, version_to) if version not in known]
        if unknown:
            raise CommandError(f"Unknown version(s) for {upstream}: {', '.join(unknown) or '(empty)'}")
        payload = report_payload(upstream=target, version_from=version_from, version_to=version_to)
        rendered = {
            "json": lambda: json.dumps(payload, indent=2),
            "csv": lambda: report_csv(payload),
            "html": lambda: report_html(payload, title=f"Compatibility report for {target.name}"),
        }[format]()
        if output:
            with open(output, "w") as out:
                out.write(rendered)
        else:
            self.stdout.write(rendered)
        blocking = payload["summary"]["blocking"]
        self.stderr.write(
            f"{blocking} blocking finding(s) between {version_from} and {version_to}"
            + (": release gate fails." if blocking else ": release gate passes.")
        )
        sys.exit(1 if blocking else 0)
