from django.urls import path

import core.converters  # noqa: F401  (registers <name:…>, which also takes newlines)
from registry import views

app_name = "registry"

# Model names may contain "/", so `name` is a path: the most specific patterns come first and the
# model page last (config/urls.py mounts approvals' /models/<name>/… pages before these).
urlpatterns = [
    path("models/", views.model_list, name="model_list"),
    path("models/<name:name>/versions/<int:version>/files/<path:path>", views.model_version_file, name="model_version_file"),
    path("models/<name:name>/versions/<int:version>/history/", views.model_version_history, name="model_version_history"),
    path("models/<name:name>/versions/<int:version>/edit/<slug:what>", views.model_version_edit, name="model_version_edit"),
    path("models/<name:name>/versions/<int:version>/", views.model_version_detail, name="model_version_detail"),
    path("models/<name:name>/compare/", views.model_version_compare, name="model_version_compare"),
    path("models/<name:name>/edit/<slug:what>", views.model_edit, name="model_edit"),
    path("models/<name:name>/", views.model_detail, name="model_detail"),
]
