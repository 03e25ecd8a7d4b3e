"""Settings pages: personal API tokens (shown once), custom stages and stage policies (admins)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.models import StagePolicy
from core.models import ApiToken
from registry.models import Stage
from tests.ui.test_registry_pages import HTMX, as_user, htmx, make_version

# --------------------------------------------------------------------------- API tokens


def test_token_page_renders_and_lists_only_my_tokens(client, owner, outsider):
    from core.services import create_api_token

    create_api_token(user=owner, name="laptop")
    create_api_token(user=outsider, name="not-mine")
    html = as_user(client, owner).get("/settings/tokens/").content.decode()
    assert "<html" in html and "laptop" in html and "not-mine" not in html
    assert 'href="/settings/tokens/"' in html  # the user menu links here


def test_create_token_shows_it_once_and_it_works(client, owner):
    web = as_user(client, owner)
    response = web.post("/settings/tokens/", {"name": "ci", "expires_days": "30"}, **htmx("tokens-panel"))
    html = response.content.decode()
    assert html.strip().startswith('<section id="tokens-panel"') and "only once" in html
    raw = html.split('id="new-token" class="mono" readonly value="', 1)[1].split('"', 1)[0]
    assert raw.startswith("sg_")
    token = ApiToken.objects.get(name="ci")
    assert token.expires_at is not None and token.token_hash != raw
    api = client.get("/api/2.0/mlflow/registered-models/search", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.status_code == 200
    again = web.get("/settings/tokens/").content.decode()
    assert raw not in again and token.prefix in again  # never shown again


def test_create_token_errors_keep_the_input(client, owner):
    response = as_user(client, owner).post("/settings/tokens/", {"name": "x", "expires_days": "forever"})
    html = response.content.decode()
    assert response.status_code == 200 and 'id="token-error"' in html and 'value="forever"' in html and 'value="x"' in html
    assert not ApiToken.objects.exists()
    response = as_user(client, owner).post("/settings/tokens/", {"name": ""}, **HTMX)
    assert b'id="token-error"' in response.content


def test_revoke_token_htmx_and_no_js(client, owner, outsider):
    from core.services import create_api_token

    token, raw = create_api_token(user=owner, name="old")
    assert as_user(client, outsider).post(f"/settings/tokens/{token.pk}/revoke").status_code == 404
    web = as_user(client, owner)
    assert web.get(f"/settings/tokens/{token.pk}/revoke").status_code == 405
    response = web.post(f"/settings/tokens/{token.pk}/revoke", **HTMX)
    assert response.status_code == 200 and b"revoked" in response.content
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert client.get("/api/2.0/mlflow/registered-models/search", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 401
    other, _ = create_api_token(user=owner, name="other")
    assert web.post(f"/settings/tokens/{other.pk}/revoke").status_code == 302


def test_tokens_query_count_is_flat(client, owner):
    from core.services import create_api_token

    web = as_user(client, owner)
    create_api_token(user=owner, name="t0")

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert web.get("/settings/tokens/").status_code == 200
        return len(ctx.captured_queries)

    one = count()
    for i in range(15):
        create_api_token(user=owner, name=f"t{i + 1}")
    assert count() == one


def test_settings_require_sign_in(client, db):
    for url in ("/settings/tokens/", "/settings/stages/", "/settings/policies/"):
        assert client.get(url).status_code == 302


# --------------------------------------------------------------------------- stages and policies (admins)


def test_stage_and_policy_pages_are_for_admins(client, owner, admin):
    assert as_user(client, owner).get("/settings/stages/").status_code == 403
    assert as_user(client, owner).post("/settings/stages/", {"name": "Shadow"}).status_code == 403
    assert as_user(client, owner).get("/settings/policies/").status_code == 403
    assert not Stage.objects.filter(name="Shadow").exists()
    html = as_user(client, admin).get("/settings/stages/").content.decode()
    assert "Production" in html and "built in" in html
    assert as_user(client, admin).put("/settings/stages/").status_code == 405


def test_admin_adds_and_deletes_a_custom_stage(client, admin, owner):
    web = as_user(client, admin)
    response = web.post("/settings/stages/", {"name": "Shadow", "order": "25", "description": "mirrors prod"}, **htmx("stages-panel"))
    assert response.content.decode().strip().startswith('<section id="stages-panel"') and b"Shadow" in response.content
    response = web.post("/settings/stages/", {"name": "shadow"}, **HTMX)
    assert b"already exists" in response.content and b'value="shadow"' in response.content
    stage = Stage.objects.get(name="Shadow")
    from registry import services

    make_version(owner, "m")
    services.transition_model_version_stage(name="m", version=1, stage="shadow", user=admin)
    response = web.post("/settings/stages/", {"action": "delete", "stage_id": stage.pk}, **HTMX)
    assert b"in use" in response.content and Stage.objects.filter(pk=stage.pk).exists()
    services.transition_model_version_stage(name="m", version=1, stage="None", user=admin)
    assert web.post("/settings/stages/", {"action": "delete", "stage_id": stage.pk}).status_code == 302
    assert not Stage.objects.filter(pk=stage.pk).exists()
    builtin = Stage.objects.get(name="Production")
    assert b"built-in" in web.post("/settings/stages/", {"action": "delete", "stage_id": builtin.pk}, **HTMX).content


def test_admin_sets_and_deletes_policies(client, admin, owner):
    make_version(owner, "wine")
    web = as_user(client, admin)
    response = web.post("/settings/policies/", {
        "stage": "Production", "requires_approval": "on", "min_approvals": "2", "approver_level": "CAN_MANAGE",
        "checks": '[{"type": "metric", "key": "rmse", "op": "<=", "value": 0.8}]',
    }, **htmx("policies-panel"))
    html = response.content.decode()
    assert html.strip().startswith('<section id="policies-panel"') and "rmse &lt;= 0.8" in html and "2 approvals" in html
    policy = StagePolicy.objects.get(model=None, stage="Production")
    assert policy.min_approvals == 2 and policy.approver_level == "CAN_MANAGE"
    response = web.post("/settings/policies/", {"stage": "Staging", "model_name": "wine", "min_approvals": "1", "checks": "[]"})
    assert response.status_code == 302 and StagePolicy.objects.filter(model__name="wine", stage="Staging").exists()
    response = web.post("/settings/policies/", {"stage": "Staging", "min_approvals": "1", "checks": '[{"type": "bogus"}]'}, **HTMX)
    assert b"unknown type" in response.content and b"bogus" in response.content
    response = web.post("/settings/policies/", {"stage": "Staging", "min_approvals": "1", "checks": "not json"})
    assert response.status_code == 200 and b"JSON" in response.content and b"not json" in response.content
    web.post("/settings/policies/", {"action": "delete", "stage": "Production", "model_name": ""}, **HTMX)
    assert not StagePolicy.objects.filter(model=None, stage="Production").exists()


@pytest.mark.parametrize("url", ["/settings/stages/", "/settings/policies/"])
def test_admin_settings_query_count_is_flat(client, admin, url):
    web = as_user(client, admin)
    from approvals import services as gov

    gov.set_stage_policy(user=admin, stage="Production")
    Stage.objects.create(name="Extra0", order=50)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert web.get(url).status_code == 200
        return len(ctx.captured_queries)

    one = count()
    for i in range(1, 8):
        Stage.objects.create(name=f"Extra{i}", order=50 + i)
        gov.set_stage_policy(user=admin, stage=f"Extra{i}", checks_spec=[{"type": "version_ready"}])
    assert count() == one


def test_header_tab_follows_the_section(client, owner, admin):
    make_version(owner, "wine")
    assert 'aria-current="page">Models' in as_user(client, owner).get("/models/wine/permissions/").content.decode()
    assert 'aria-current="page">Models' in as_user(client, owner).get("/models/wine/versions/1/request/").content.decode()
    html = as_user(client, admin).get("/settings/policies/").content.decode()
    assert 'class="inbox" aria-current="page"' not in html
    assert 'class="inbox" aria-current="page"' in as_user(client, owner).get("/reviews/").content.decode()
