from django.shortcuts import render
from django.views.decorators.http import require_GET

from tracking.models import Experiment


@require_GET
def experiment_list(request):
    experiments = Experiment.objects.active().order_by("name")[:200]
    return render(request, "tracking/experiment_list.html", {"experiments": experiments})
