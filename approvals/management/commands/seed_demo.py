"""Load the demo registry: the wine-quality tutorial run through the services."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from approvals.demo import load_evaluation_demo, load_governance_demo
from registry.demo import MODEL_NAME, load_demo
from registry.models import RegisteredModel


class Command(BaseCommand):
    help = "Load the demo registry (experiment wine-quality, three runs, lr_wine_quality v1 Production / v2 Staging)."

    def add_arguments(self, parser):
        parser.add_argument("--if-empty", action="store_true", dest="if_empty", help="only when no registered model exists yet")
        parser.add_argument("--user", default=None, help="the demo's owner (default: the bootstrap admin)")

    def handle(self, *args, if_empty=False, user=None, **options):
        if if_empty and RegisteredModel.objects.exists():
            self.stdout.write("Registered models exist already: demo not loaded.")
            return
        username = user or settings.STAGEGATE_ADMIN_USER
        owner = get_user_model().objects.filter(username=username).first()
        if owner is None:
            raise CommandError(f"No user named {username!r}: run `manage.py bootstrap` first or pass --user.")
        model = load_demo(user=owner)
        versions = ", ".join(f"v{v.version} {v.current_stage} {v.status}" for v in model.versions.order_by("version"))
        self.stdout.write(self.style.SUCCESS(f"Demo loaded: {MODEL_NAME} ({versions})"))
        # Server-side evaluation first, so the request below carries the evaluation's verdict.
        for ev in load_evaluation_demo(admin=owner):
            rmse = ev.metrics.get("rmse")
            self.stdout.write(f"Evaluated v{ev.version.version} on {ev.dataset.name}: {ev.status}"
                              + (f", rmse {rmse:.4f}" if rmse is not None else f" ({ev.message})"))
        # Governance on top: users scientist and reviewer, a Production policy, a pending request.
        governance = load_governance_demo(admin=owner)
        for name, password in governance["passwords"].items():
            self.stdout.write(self.style.WARNING(
                f"Created demo user '{name}' with password: {password}\nIt is shown only this once."
            ))
        request = governance["request"]
        if request is not None and request.is_pending:
            self.stdout.write(
                f"Governance demo: Production of {MODEL_NAME} needs an approval; '{request.requester_name}' asks to "
                f"move v{request.version.version} there, waiting in 'reviewer''s inbox."
            )
