from django.urls import path

from tracking import views

app_name = "tracking"

urlpatterns = [
    path("experiments/", views.experiment_list, name="experiment_list"),
    path("experiments/<int:experiment_id>/", views.experiment_detail, name="experiment_detail"),
    # Before runs/<run_id>/ so "compare" is never taken for a run id.
    path("runs/compare/", views.run_compare, name="run_compare"),
    path("runs/<str:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<str:run_id>/tags/", views.run_set_tag, name="run_set_tag"),
    path("runs/<str:run_id>/tags/delete/", views.run_delete_tag, name="run_delete_tag"),
    path("runs/<str:run_id>/delete/", views.run_lifecycle, {"action": "delete"}, name="run_delete"),
    path("runs/<str:run_id>/restore/", views.run_lifecycle, {"action": "restore"}, name="run_restore"),
    path("runs/<str:run_id>/artifacts/<path:path>", views.artifact_download, name="artifact_download"),
    path(
        "runs/<str:run_id>/models/<str:model_id>/artifacts/<path:path>",
        views.artifact_download,
        name="model_artifact_download",
    ),
    path("search/", views.search_view, name="search"),
    path("mlflow-link/", views.mlflow_link, name="mlflow_link"),
]
