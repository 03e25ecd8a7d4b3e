from django.urls import path

from registry import views

app_name = "registry"

urlpatterns = [
    path("models/", views.model_list, name="model_list"),
]
