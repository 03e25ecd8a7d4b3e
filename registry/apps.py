from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"

    def ready(self):
        from core import artifacts
        from registry import access

        # The artifact proxy asks this rule about every `registry/…` path (the versions' own copies).
        artifacts.register_access_rule("registry", access.artifact_rule)
        # The run page and the runs table list the versions registered from each run.
        from registry import views
        from tracking import views as tracking_views

        tracking_views.register_run_versions_provider(views.versions_by_run)
