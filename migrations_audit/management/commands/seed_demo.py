"""Demo data for `make run`: a user, a team, the `anthropic` upstream on the emulator. Idempotent."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from migrations_audit import demo


class Command(BaseCommand):
    help = "Create the demo user, team and upstream (and recorded traffic) unless they exist."

    def add_arguments(self, parser):
        parser.add_argument("--emulator-url", default=demo.EMULATOR_URL)

    def handle(self, *args, emulator_url, **options):
        try:
            with transaction.atomic():
                summary = demo.demo_seed(emulator_url=emulator_url)
        except ValidationError as error:
            # The emulator's address must be allowed: `make run` sets MIGRATION_AUDIT_UPSTREAM_HOSTS.
            raise CommandError(" ".join(error.messages)) from None
        user = get_user_model().objects.get(username=demo.DEMO_USERNAME)
        self.stdout.write(
            f"Demo ready: log in as {user.username} / {demo.DEMO_PASSWORD}; "
            f"upstream '{demo.DEMO_UPSTREAM_SLUG}' -> {emulator_url}; {summary}"
        )
