from django.urls import path

from registry import views

app_name = "registry"

urlpatterns = [
    path("models/", views.model_list, name="model_list"),
    path("models/<str:name>/", views.model_detail, name="model_detail"),
    path("models/<str:name>/edit/<slug:what>", views.model_edit, name="model_edit"),
    path("models/<str:name>/compare/", views.model_version_compare, name="model_version_compare"),
    path("models/<str:name>/versions/<int:version>/", views.model_version_detail, name="model_version_detail"),
    path("models/<str:name>/versions/<int:version>/edit/<slug:what>", views.model_version_edit, name="model_version_edit"),
    path("models/<str:name>/versions/<int:version>/history/", views.model_version_history, name="model_version_history"),
    path("models/<str:name>/versions/<int:version>/files/<path:path>", views.model_version_file, name="model_version_file"),
]
