from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"

    def ready(self):
        # Plug into the registry's outbox: the audit row in the event's transaction,
        # webhooks and e-mail after commit. The registry never imports monitoring.
        from monitoring import hooks

        hooks.install()
