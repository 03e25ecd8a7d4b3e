from django.shortcuts import render
from django.views.decorators.http import require_GET

from registry import access, services


@require_GET
def model_list(request):
    """Registered models with the newest version in each stage: a constant number of queries."""
    models = list(services.registered_model_queryset(access.registered_models_visible_to(request.user)).order_by("name")[:500])
    latest = services.latest_versions_for([m.pk for m in models])
    rows = [{"model": m, "latest": latest.get(m.pk, [])} for m in models]
    return render(request, "registry/model_list.html", {"rows": rows})
