from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    path("reviews/", views.inbox, name="inbox"),
    path("models/<path:name>/permissions/", views.model_permissions, name="model_permissions"),
    path("models/<path:name>/permissions/suggest", views.permission_suggestions, name="permission_suggestions"),
    path("models/<path:name>/versions/<int:version>/request/", views.request_transition, name="request_transition"),
    path("models/<path:name>/versions/<int:version>/comments/", views.create_comment, name="create_comment"),
    path("requests/<int:request_id>/review", views.review_request, name="review_request"),
    path("requests/<int:request_id>/compare", views.request_compare, name="request_compare"),
    path("comments/<int:comment_id>/edit", views.update_comment, name="update_comment"),
    path("comments/<int:comment_id>/delete", views.delete_comment, name="delete_comment"),
    path("settings/stages/", views.settings_stages, name="settings_stages"),
    path("settings/policies/", views.settings_policies, name="settings_policies"),
]
