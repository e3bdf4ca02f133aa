"""Re-encrypt stored replay credentials under the current key of MIGRATION_AUDIT_ENCRYPTION_KEYS.

API-key fingerprints cannot be re-keyed here (the keys themselves are never stored): a client first
seen under a previous MIGRATION_AUDIT_FINGERPRINT_KEYS entry takes the current fingerprint the next
time one of its requests is recorded.
"""

from django.core.management.base import BaseCommand, CommandError

from migrations_audit import crypto


class Command(BaseCommand):
    help = "Re-encrypt stored replay credentials under the current encryption key."

    def handle(self, *args, **options):
        try:
            rotated = crypto.credentials_rotate()
        except ValueError as error:
            raise CommandError(f"{error}: list the key it was encrypted with after the current one") from None
        self.stdout.write(f"Re-encrypted {rotated} replay credential(s) under the current key.")
