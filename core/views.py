from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET

STAGEGATE_VERSION = "0.1.0"
# The MLflow server version we speak the protocol of.
MLFLOW_PROTOCOL_VERSION = "3.18.0"


@login_not_required
@require_GET
def health(request):
    return HttpResponse("OK", content_type="text/plain")


@login_not_required
@require_GET
def version(request):
    return HttpResponse(MLFLOW_PROTOCOL_VERSION, content_type="text/plain")


@require_GET
def home(request):
    return redirect("registry:model_list")
