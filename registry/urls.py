from django.urls import path

from registry import views

app_name = "registry"

# Model names may contain "/", so `name` is a path: the most specific patterns come first and the
# model page last (config/urls.py mounts approvals' /models/<name>/… pages before these).
urlpatterns = [
    path("models/", views.model_list, name="model_list"),
    path("models/<path:name>/versions/<int:version>/files/<path:path>", views.model_version_file, name="model_version_file"),
    path("models/<path:name>/versions/<int:version>/history/", views.model_version_history, name="model_version_history"),
    path("models/<path:name>/versions/<int:version>/edit/<slug:what>", views.model_version_edit, name="model_version_edit"),
    path("models/<path:name>/versions/<int:version>/", views.model_version_detail, name="model_version_detail"),
    path("models/<path:name>/compare/", views.model_version_compare, name="model_version_compare"),
    path("models/<path:name>/edit/<slug:what>", views.model_edit, name="model_edit"),
    path("models/<path:name>/", views.model_detail, name="model_detail"),
]
