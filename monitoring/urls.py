from django.urls import path

import core.converters  # noqa: F401  (registers <name:…>, which also takes newlines)
from monitoring import views

app_name = "monitoring"

urlpatterns = [
    path("monitoring/webhooks/", views.webhook_list, name="webhook_list"),
    path("monitoring/webhooks/<uuid:webhook_id>/", views.webhook_detail, name="webhook_detail"),
    path("monitoring/webhooks/<uuid:webhook_id>/test", views.webhook_test, name="webhook_test"),
    path("monitoring/webhooks/<uuid:webhook_id>/delete", views.webhook_delete, name="webhook_delete"),
    path("monitoring/deliveries/", views.delivery_list, name="delivery_list"),
    path("monitoring/deliveries/<uuid:delivery_id>/", views.delivery_detail, name="delivery_detail"),
    path("monitoring/deliveries/<uuid:delivery_id>/redeliver", views.delivery_redeliver, name="delivery_redeliver"),
    path("monitoring/audit/", views.audit_log, name="audit_log"),
    path("monitoring/audit/export.jsonl", views.audit_export, name="audit_export"),
    path("monitoring/watches/", views.watch_list, name="watch_list"),
    path("monitoring/models/<name:name>/watch", views.model_watch, name="model_watch"),
    path("monitoring/models/<name:name>/history", views.model_history, name="model_history"),
]
