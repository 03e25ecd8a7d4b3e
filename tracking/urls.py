from django.urls import path

from tracking import views

app_name = "tracking"

urlpatterns = [
    path("experiments/", views.experiment_list, name="experiment_list"),
]
