from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def model_list(request):
    return render(request, "registry/model_list.html", {"models": []})
