"""manage.py replay --upstream SLUG --versions A,B [filters] [--wait]: start a replay run."""

import time

from django.core.management.base import BaseCommand, CommandError

from migrations_audit.models import ReplayRun, Upstream
from migrations_audit.replay import runs, selectors
from migrations_audit.replay.forms import RunForm
from migrations_audit.replay.runs import ReplayError


class Command(BaseCommand):
    help = "Replay recorded traffic of an upstream under several API versions (workers do the work)."

    def add_arguments(self, parser):
        parser.add_argument("--upstream", required=True)
        parser.add_argument(
            "--versions",
            "--variants",
            dest="versions",
            required=True,
            help="comma-separated VERSION[@MODEL] or saved variant names, "
            "e.g. 2023-06-01,2026-10-21@claude-sonnet-5",
        )
        parser.add_argument("--client", help="client id")
        parser.add_argument("--endpoint", help='e.g. "POST /v1/messages"')
        parser.add_argument(
            "--recorded-version", dest="version", help="only exchanges recorded with this version"
        )
        parser.add_argument("--since", help="ISO date or time")
        parser.add_argument("--until", help="ISO date or time")
        parser.add_argument("--streamed", choices=["yes", "no"])
        parser.add_argument("--sample", type=int, help="at most this many exchanges, newest first")
        parser.add_argument("--noise", type=float, default=0.1, help="share replayed twice (default 0.1)")
        parser.add_argument("--budget", type=int, help="token budget")
        parser.add_argument("--wait", action="store_true", help="print progress until the run ends")

    def handle(self, *args, upstream, versions, wait, noise, budget, **options):
        target = Upstream.objects.filter(slug=upstream).first()
        if target is None:
            raise CommandError(f"No upstream with slug {upstream!r}.")
        form = RunForm(
            {
                **{name: value for name, value in options.items() if name in RunForm.SELECTION},
                "versions": versions,
                "noise_sample_rate": noise,
                "token_budget": budget,
            }
        )
        if not form.is_valid():
            raise CommandError(form.error_text())
        try:
            run = runs.run_start(upstream=target, **form.run_arguments())
        except ReplayError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Run {run.pk} started: {run.exchanges_prepared} exchanges ready"
            + ("." if run.prepared_at else ", the rest being prepared in the background.")
        )
        if not wait:
            return
        while True:
            run.refresh_from_db()
            progress = selectors.run_progress(run=run)
            c = progress["counts"]
            self.stdout.write(
                f"  {progress['percent']:3d}%  done {c['done']}  failed {c['failed']}  "
                f"retrying {c['retrying']}  "
                f"pending {c['pending'] + c['running']}  {progress['throughput_per_s']}/s"
            )
            if not run.is_active:
                break
            time.sleep(2)
        summary = selectors.run_differences_summary(run=run)
        self.stdout.write(
            self.style.SUCCESS(
                f"Run {run.pk} {run.get_status_display().lower()}: {c['done']} done, {c['failed']} failed. "
                f"Differences: {summary['breaking']} breaking ({summary['unexplained']} unexplained), "
                f"{summary['additive']} additive, {summary['noise']} noise."
            )
        )
        if run.status == ReplayRun.Status.FAILED:
            raise CommandError(run.error or "the run failed")
