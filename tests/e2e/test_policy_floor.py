"""A model owner tries to switch off the global approval rule from the model's Stage policies tab:
the form shows the refusal in place (htmx) and nothing is saved."""

import pytest

from approvals import services as gov
from approvals.models import StagePolicy
from registry.models import RegisteredModel
from tests.ui.test_registry_pages import make_version

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_owner_is_refused_lowering_the_global_policy(signed_in_page, owner, admin, screenshot):
    make_version(owner, "wine", stage="Staging")
    gov.set_stage_policy(user=admin, stage="Production", requires_approval=True, min_approvals=1)
    page = signed_in_page(owner)
    page.goto("/models/wine/")
    page.click("nav.tabs >> text=Stage policies")
    page.wait_for_url("**/models/wine/policies/")
    form = page.locator("#model-policy-form")
    form.locator("select[name=stage]").select_option("Production")
    form.locator("input[name=requires_approval]").uncheck()
    form.locator("button[type=submit]").click()
    alert = page.locator("#policy-error")
    alert.wait_for()
    assert alert.inner_text() == "The global policy for Production requires approval; only a superuser can lower it for one model."
    # The form keeps what was typed; nothing was saved.
    assert not page.locator("#model-policy-form input[name=requires_approval]").is_checked()
    assert not StagePolicy.objects.filter(model=RegisteredModel.objects.get(name="wine")).exists()
    assert page.locator("#effective-policies tr[data-stage=Production]").inner_text().count("global") == 1
    screenshot(page, "policy-floor-refused")
