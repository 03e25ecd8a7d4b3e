from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"

    def ready(self):
        from core import artifacts
        from registry import access

        # The artifact proxy asks this rule about every `registry/…` path (the versions' own copies).
        artifacts.register_access_rule("registry", access.artifact_rule)
