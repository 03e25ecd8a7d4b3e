from django.urls import path

from tracking import views

app_name = "tracking"

urlpatterns = [
    path("experiments/", views.experiment_list, name="experiment_list"),
    path("experiments/<int:experiment_id>/", views.experiment_detail, name="experiment_detail"),
    # Before runs/<run_id>/ so "compare" is never taken for a run id.
    path("runs/compare/", views.run_compare, name="run_compare"),
    path("runs/<str:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<str:run_id>/artifacts/<path:path>", views.artifact_download, name="artifact_download"),
    path(
        "runs/<str:run_id>/models/<str:model_id>/artifacts/<path:path>",
        views.artifact_download,
        name="model_artifact_download",
    ),
    path("search/", views.search_view, name="search"),
]
