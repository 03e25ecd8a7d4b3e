"""Names on pages: every name the API accepts has working links, and names stored before the input
rules (newlines, bidi overrides) never fail a page."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from registry.models import RegisteredModel
from tests.ui import data
from tests.ui.test_registry_pages import make_version
from tracking.models import Experiment, Run

pytestmark = pytest.mark.django_db

AWKWARD = ["team/churn model", "100% sure?", "a#b", "模型 🚀", "x/edit/y", "q?x=1&y=2"]
LEGACY = ["bad\nname", "tab\tname", "\u202eevil", "dots/../up", "trailing/"]


def model_pages(name: str) -> list[str]:
    return [
        reverse("registry:model_detail", args=[name]),
        reverse("registry:model_version_detail", args=[name, 1]),
        reverse("registry:model_version_history", args=[name, 1]),
        reverse("approvals:model_permissions", args=[name]),
        reverse("approvals:request_transition", args=[name, 1]),
        reverse("monitoring:model_history", args=[name]),
    ]


@pytest.mark.parametrize("name", AWKWARD)
def test_awkward_names_link_to_their_own_pages(web, owner, name):
    make_version(owner, name)
    listing = web.get("/models/")
    assert listing.status_code == 200
    url = reverse("registry:model_detail", args=[name])
    assert f'href="{escape(url)}"' in listing.content.decode()
    for page in model_pages(name):
        response = web.get(page)
        assert response.status_code == 200, (page, response.status_code)
    assert web.get(url).context["model"].name == name


@pytest.mark.parametrize("name", LEGACY)
def test_names_stored_before_the_rules_do_not_break_pages(web, api, owner, name):
    make_version(owner, "legacy")
    RegisteredModel.objects.filter(name="legacy").update(name=name)  # as an older server stored it
    experiment = data.experiment(owner, "exp")
    run = data.run(owner, experiment, name="r")
    Experiment.objects.filter(pk=experiment.pk).update(name="exp " + name)
    Run.objects.filter(pk=run.pk).update(name="run " + name)
    for page in ["/", "/models/", "/experiments/", f"/experiments/{experiment.pk}/", f"/runs/{run.run_uuid}/",
                 "/search/?q=bad", *model_pages(name)]:
        response = web.get(page, follow=True)  # "/" redirects to the models list
        assert response.status_code == 200, (page, response.status_code)
    assert web.get(reverse("registry:model_detail", args=[name])).context["model"].name == name
    # The API still reads it by name, and renaming it to a valid name fixes it.
    assert api.get("registered-models/get", {"name": name}).json()["registered_model"]["name"] == name
    assert api.post("registered-models/rename", {"name": name, "new_name": "fixed"}).status_code == 200
    assert RegisteredModel.objects.filter(name="fixed").exists()


def test_stage_names_and_order_are_checked_on_the_settings_page(client, admin):
    from registry.models import Stage

    client.force_login(admin)
    for name, order, error in (("Bad\nStage", "1", "A stage name is 1 to 64"), ("Rtl\u202eX", "1", "A stage name is 1 to 64"),
                               ("Huge", "99999999999999999999", "The order is a whole number")):
        response = client.post("/settings/stages/", {"name": name, "order": order})
        assert response.status_code == 200 and error in response.content.decode(), name
    assert not Stage.objects.filter(built_in=False).exists()
