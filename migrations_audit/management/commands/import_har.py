"""manage.py import_har FILE --upstream SLUG: import a HAR 1.2 file, streaming, with progress."""

import os

from django.core.management.base import BaseCommand, CommandError

from migrations_audit.capture.har import har_import
from migrations_audit.capture.ingest import IngestError
from migrations_audit.models import Upstream


class Command(BaseCommand):
    help = "Import the API calls of a HAR file (browsers, mitmproxy, proxies) as recorded exchanges."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--upstream", required=True, help="slug of the upstream the calls went to")

    def handle(self, *args, file, upstream, **options):
        target = Upstream.objects.filter(slug=upstream).first()
        if target is None:
            raise CommandError(f"No upstream with slug {upstream!r}.")
        try:
            size = os.path.getsize(file)
            stream = open(file, "rb")  # noqa: SIM115 - closed below, read as it streams
        except OSError as error:
            raise CommandError(f"Cannot read {file}: {error.strerror}") from None

        def progress(update):
            percent = 100 * update.bytes_done / size if size else 100
            self.stdout.write(
                f"{percent:5.1f}%  {update.summary.accepted} stored, {update.summary.duplicates} duplicates"
            )

        try:
            with stream:
                summary = har_import(upstream=target, stream=stream, on_progress=progress)
        except IngestError as error:
            raise CommandError(str(error)) from None
        for rejection in summary.rejections[:20]:
            self.stderr.write(f"entry {rejection['line']} rejected: {rejection['reason']}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {summary.accepted} exchanges ({summary.duplicates} duplicates, "
                f"{summary.rejected} rejected, {summary.skipped} not API calls)."
            )
        )
