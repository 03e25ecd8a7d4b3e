from core.api import api_view

urlpatterns = []


@api_view("GET", auth=False)
def server_info(request, params):
    return {}
