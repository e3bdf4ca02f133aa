"""manage.py compat_report --upstream SLUG [--versions A,B] [--fail-on breaking|unexplained|any]
                          [--ignore FILE] [--format json|junit|github|csv|html] [--output FILE]

The compatibility report on demand, for CI pipelines. Exit status:

  0  the release gate passes: no finding at the --fail-on level is left neither acknowledged (in
     the product) nor ignored (by the --ignore file);
  1  the release gate fails;
  2  usage or data error: unknown upstream or version, an unreadable or malformed ignore file, or
     no replay has compared the two versions yet (the gate cannot decide).

--fail-on: `breaking` (default) counts breaking differences and the requests the target version
rejects; `unexplained` adds the differences no changelog rule explains; `any` counts every finding.
--ignore FILE: one signature per line, as the JSON report's `signature` fields give them, `#`
starting a comment (the reason). A request the target version rejects is ignored per client (the
`by_client` signatures), never for every client (the rule's own signature is refused).
"""

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from migrations_audit.models import Upstream
from migrations_audit.replay.variants import VariantError, variant_parse
from migrations_audit.reports.acknowledgements import acknowledgements_expire
from migrations_audit.reports.build import report_payload
from migrations_audit.reports.findings import (
    FAIL_ON_LEVELS,
    gate_evaluate,
    ignore_file_parse,
    report_findings,
    rule_signatures,
)
from migrations_audit.reports.render import report_csv, report_github, report_html, report_junit

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


def _error(message: str) -> CommandError:
    return CommandError(message, returncode=EXIT_ERROR)


class Command(BaseCommand):
    help = (
        "Print a compatibility report between two versions of an upstream. Exit 0 if the release gate "
        "passes, 1 if it fails, 2 on a usage or data error (e.g. no replay yet)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--upstream", required=True)
        parser.add_argument("--versions", help="FROM,TO (default: the upstream's baseline and target)")
        parser.add_argument("--fail-on", choices=FAIL_ON_LEVELS, default="breaking", dest="fail_on")
        parser.add_argument("--ignore", help="a file of signatures to ignore, one per line, # comments")
        parser.add_argument("--format", choices=["json", "junit", "github", "csv", "html"], default="json")
        parser.add_argument("--output", help="write to this file instead of standard output")

    def handle(self, *args, upstream, versions, fail_on, ignore, format, output, **options):
        target = Upstream.objects.filter(slug=upstream).first()
        if target is None:
            raise _error(f"No upstream with slug {upstream!r}.")
        version_from, version_to = self._versions(target, versions)
        ignored = self._ignored(ignore)
        acknowledgements_expire(upstream=target)
        payload = report_payload(upstream=target, version_from=version_from, version_to=version_to)
        if not payload["summary"]["exchanges_compared"]:
            raise _error(
                f"No replay has compared {version_from} and {version_to} of {upstream} yet: the gate "
                f"cannot decide. Run one first (manage.py replay --upstream {upstream} "
                f"--versions {version_from},{version_to} --wait)."
            )
        self._ignored_check(payload, ignored)
        gate = gate_evaluate(payload, fail_on=fail_on, ignored=ignored)
        payload["gate"] = gate
        rendered = {
            "json": lambda: json.dumps(payload, indent=2),
            "junit": lambda: report_junit(payload, gate),
            "github": lambda: report_github(payload, gate),
            "csv": lambda: report_csv(payload),
            "html": lambda: report_html(payload, title=f"Compatibility report for {target.name}"),
        }[format]()
        if output:
            with open(output, "w") as out:
                out.write(rendered)
        else:
            self.stdout.write(rendered)
        failing = len(gate["failing"])
        self.stderr.write(
            f"{failing} finding(s) fail the gate (fail on {fail_on}) between {version_from} and {version_to}"
            + (": release gate fails." if failing else ": release gate passes.")
        )
        sys.exit(EXIT_FAIL if failing else EXIT_PASS)

    def _versions(self, target: Upstream, versions: str | None) -> tuple[str, str]:
        if versions:
            parts = [part.strip() for part in versions.split(",")]
            if len(parts) != 2 or not all(parts):
                raise _error("--versions takes two versions: FROM,TO")
            version_from, version_to = parts
        else:
            version_from, version_to = target.baseline_version, target.target_version
        # A variant (VERSION@MODEL or a saved variant's name) is compared as a version is.
        known = list(target.versions.values_list("name", flat=True))
        unknown = []
        for label in (version_from, version_to):
            try:
                variant_parse(label, upstream=target, known_versions=known)
            except VariantError:
                unknown.append(label)
        if unknown:
            raise _error(f"Unknown version(s) for {target.slug}: {', '.join(unknown) or '(empty)'}")
        return version_from, version_to

    def _ignored(self, path: str | None) -> frozenset[str]:
        if not path:
            return frozenset()
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise _error(f"Cannot read the ignore file {path}: {error}") from None
        try:
            return ignore_file_parse(text)
        except ValueError as error:
            raise _error(f"{path}, {error}") from None

    def _ignored_check(self, payload: dict, ignored: frozenset[str]) -> None:
        refused = ignored & rule_signatures(payload)
        if refused:
            raise _error(
                f"{', '.join(sorted(refused))}: a request the target version rejects is ignored per "
                "client (its by_client signatures), never for every client."
            )
        findings = {finding.signature: finding for finding in report_findings(payload)}
        anonymous = sorted(s for s in ignored if s in findings and not findings[s].acknowledgeable)
        if anonymous:
            raise _error(f"{', '.join(anonymous)}: requests with no client identity cannot be ignored.")
        stale = sorted(ignored - findings.keys())
        if stale:
            self.stderr.write(f"Ignored signature(s) matching no finding (stale?): {', '.join(stale)}")
