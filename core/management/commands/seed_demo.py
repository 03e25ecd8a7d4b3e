"""Placeholder until the registry's demo lands: the registry app overrides this command."""

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Load the demo registry (tutorial runs and models)."

    def add_arguments(self, parser):
        parser.add_argument("--if-empty", action="store_true", dest="if_empty")

    def handle(self, *args, **options):
        self.stdout.write("No demo data to load yet.")
