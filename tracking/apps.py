from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"

    def ready(self):
        from tracking import artifacts

        artifacts.register_access_rules()
