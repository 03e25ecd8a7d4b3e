from django.urls import path

import core.converters  # noqa: F401  (registers <name:…>, which also takes newlines)
from approvals import views

app_name = "approvals"

urlpatterns = [
    path("reviews/", views.inbox, name="inbox"),
    path("models/<name:name>/permissions/", views.model_permissions, name="model_permissions"),
    path("models/<name:name>/permissions/suggest", views.permission_suggestions, name="permission_suggestions"),
    path("models/<name:name>/policies/", views.model_policies, name="model_policies"),
    path("models/<name:name>/versions/<int:version>/request/", views.request_transition, name="request_transition"),
    path("models/<name:name>/versions/<int:version>/comments/", views.create_comment, name="create_comment"),
    path("models/<name:name>/versions/<int:version>/evaluation/", views.evaluation_panel, name="evaluation_panel"),
    path("models/<name:name>/versions/<int:version>/evaluation/run", views.run_evaluation, name="run_evaluation"),
    path("models/<name:name>/datasets/", views.model_datasets, name="model_datasets"),
    path("requests/<int:request_id>/review", views.review_request, name="review_request"),
    path("requests/<int:request_id>/compare", views.request_compare, name="request_compare"),
    path("comments/<int:comment_id>/edit", views.update_comment, name="update_comment"),
    path("comments/<int:comment_id>/delete", views.delete_comment, name="delete_comment"),
    path("settings/stages/", views.settings_stages, name="settings_stages"),
    path("settings/policies/", views.settings_policies, name="settings_policies"),
]
