"""Walk the audit chain; exit 1 and name the first changed, removed or inserted record."""

from django.core.management.base import BaseCommand

from monitoring import audit


class Command(BaseCommand):
    help = "Verify the audit log's hash chain and report the first record that was changed, removed or inserted."

    def handle(self, *args, **options):
        verdict = audit.verify()
        if verdict.ok:
            self.stdout.write(self.style.SUCCESS(str(verdict)))
            return
        self.stderr.write(self.style.ERROR(str(verdict)))
        raise SystemExit(1)
