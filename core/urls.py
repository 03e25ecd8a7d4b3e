from django.contrib.auth.decorators import login_not_required
from django.urls import path

from core import oidc, views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("login/sso/", login_not_required(oidc.StartView.as_view()), name="sso_start"),
    path("login/sso/callback/", login_not_required(oidc.CallbackView.as_view()), name="sso_callback"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("settings/", views.settings_home, name="settings"),
    path("settings/tokens/", views.token_list, name="settings_tokens"),
    path("settings/tokens/<int:token_id>/revoke", views.token_revoke, name="settings_token_revoke"),
]
