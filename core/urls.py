from django.contrib.auth import views as auth_views
from django.urls import path

from core import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/", views.settings_home, name="settings"),
    path("settings/tokens/", views.token_list, name="settings_tokens"),
    path("settings/tokens/<int:token_id>/revoke", views.token_revoke, name="settings_token_revoke"),
]
