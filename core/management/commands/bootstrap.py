"""First-start set-up: the bootstrap admin, and the demo registry when the database is empty.

`make run` passes --migrate and --collectstatic too, so a start costs one Django start-up, not three."""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from core.services import ensure_user


class Command(BaseCommand):
    help = "Create the bootstrap admin (STAGEGATE_ADMIN_USER / STAGEGATE_ADMIN_PASSWORD) and, with --demo, load the demo when empty."

    def add_arguments(self, parser):
        parser.add_argument("--demo", action="store_true", help="load the demo registry if the database holds no models yet")
        parser.add_argument("--migrate", action="store_true", help="apply the migrations first (migrate --noinput)")
        parser.add_argument("--collectstatic", action="store_true", help="collect the static files too (collectstatic --noinput)")

    def handle(self, *args, demo=False, migrate=False, collectstatic=False, **options):
        if migrate:
            call_command("migrate", interactive=False, stdout=self.stdout, stderr=self.stderr)
        user, generated = ensure_user(
            username=settings.STAGEGATE_ADMIN_USER,
            password=settings.STAGEGATE_ADMIN_PASSWORD or None,
            email=settings.STAGEGATE_ADMIN_EMAIL,
            is_superuser=True,
        )
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created admin user '{user.username}' with password: {generated}\n"
                    "It is shown only this once; set STAGEGATE_ADMIN_PASSWORD to choose your own."
                )
            )
        if demo:
            call_command("seed_demo", if_empty=True, stdout=self.stdout, stderr=self.stderr)
        if collectstatic:
            call_command("collectstatic", interactive=False, verbosity=0, stdout=self.stdout, stderr=self.stderr)
