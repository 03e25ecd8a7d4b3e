from django.contrib import admin
from django.urls import include, path, re_path

from approvals import api as approvals_api
from core import views as core_views
from core.api import endpoint_not_found
from monitoring import api as monitoring_api
from registry import api as registry_api
from tracking import api as tracking_api
from tracking import artifacts as artifacts_api

# The MLflow REST API, also under the /ajax-api prefix the MLflow UI uses.
mlflow_api = (tracking_api.urlpatterns + artifacts_api.mlflow_urlpatterns + registry_api.urlpatterns
              + approvals_api.urlpatterns + monitoring_api.urlpatterns)
# MLflow's Flask routes for its UI, under /ajax-api/2.0/mlflow/ only.
mlflow_ajax_only = tracking_api.ajax_urlpatterns + artifacts_api.ajax_urlpatterns

urlpatterns = [
    path("health", core_views.health),
    path("version", core_views.version),
    path("api/2.0/mlflow/", include(mlflow_api)),
    path("ajax-api/2.0/mlflow/", include(mlflow_ajax_only + mlflow_api)),
    path("api/2.0/mlflow-artifacts/", include(artifacts_api.urlpatterns)),
    path("ajax-api/2.0/mlflow-artifacts/", include(artifacts_api.urlpatterns)),
    path("api/3.0/mlflow/server-info", artifacts_api.server_info),
    path("ajax-api/3.0/mlflow/server-info", artifacts_api.server_info),
    # Downloads MLflow's UI and older clients use, at the site root.
    path("", include(artifacts_api.root_urlpatterns + registry_api.root_urlpatterns)),
    path("api/2.0/stagegate/", include(monitoring_api.stagegate_urlpatterns)),
    path("api/2.0/permissions/", include(approvals_api.permissions_urlpatterns)),
    path("api/2.0/stagegate/", include(approvals_api.stagegate_urlpatterns)),
    re_path(r"^(ajax-)?api/", endpoint_not_found),
    path("admin/", admin.site.urls),
    path("", include("core.urls")),
    path("", include("tracking.urls")),
    # Before registry: its model page pattern (`models/<name:name>/`) would swallow approvals' subpages.
    path("", include("approvals.urls")),
    path("", include("registry.urls")),
    path("", include("monitoring.urls")),
]
