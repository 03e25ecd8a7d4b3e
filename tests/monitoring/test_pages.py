"""Monitoring pages: full render, htmx partials, permissions (404/403), wrong method (405), flat query counts."""

import pytest
from django.test import Client
from django.urls import reverse

from monitoring import services
from monitoring.models import Watch, Webhook, WebhookDelivery
from registry.models import RegisteredModel
from tests import factories

pytestmark = pytest.mark.django_db


def browser(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def hook(admin, receiver):
    return services.create_webhook(user=admin, flavor=Webhook.MLFLOW, name="ops", url=receiver.url, events=["model_version.created"], secret="k")


def test_webhook_list_and_create(admin, receiver, hook):
    c = browser(admin)
    r = c.get(reverse("monitoring:webhook_list"))
    assert r.status_code == 200
    html = r.content.decode()
    assert "ops" in html and 'id="webhook-form"' in html and "registry-wide" in html
    r = c.post(reverse("monitoring:webhook_list"), {"flavor": "databricks", "url": receiver.url, "events": ["MODEL_VERSION_DELETED"], "status": "ACTIVE"})
    assert r.status_code == 302
    created = Webhook.objects.get(flavor="databricks")
    assert r["Location"] == reverse("monitoring:webhook_detail", args=[created.pk])
    # A validation error comes back as 200 with the re-rendered form partial (htmx).
    r = c.post(reverse("monitoring:webhook_list"), {"flavor": "mlflow", "name": "x", "url": receiver.url, "events": ["MODEL_VERSION_DELETED"], "status": "ACTIVE"}, **HX)
    assert r.status_code == 200
    html = r.content.decode()
    assert html.lstrip().startswith('<form id="webhook-form"') and "Invalid webhook event" in html
    assert "<html" not in html


def test_model_manager_sees_only_their_models_webhooks(owner, outsider, admin, receiver, hook, make_version):
    make_version("churn")
    mine = services.create_webhook(user=owner, flavor=Webhook.DATABRICKS, url=receiver.url, model_name="churn", events=["MODEL_VERSION_CREATED"])
    html = browser(owner).get(reverse("monitoring:webhook_list")).content.decode()
    assert str(mine.pk) in html and str(hook.pk) not in html
    assert browser(owner).get(reverse("monitoring:webhook_detail", args=[hook.pk])).status_code == 404
    assert browser(outsider).get(reverse("monitoring:webhook_detail", args=[mine.pk])).status_code == 404
    # Registry-wide creation is refused on the form for a non-admin.
    r = browser(owner).post(reverse("monitoring:webhook_list"), {"flavor": "mlflow", "name": "x", "url": receiver.url, "events": ["model_version.created"], "status": "ACTIVE"})
    assert r.status_code == 200 and "only administrators" in r.content.decode()


def test_webhook_detail_edit_test_delete(admin, receiver, hook):
    c = browser(admin)
    url = reverse("monitoring:webhook_detail", args=[hook.pk])
    r = c.get(url)
    assert r.status_code == 200 and "set (never shown)" in r.content.decode() and "k" not in r.context["form"].initial.get("secret", "")
    r = c.post(url, {"name": "ops2", "url": receiver.url, "events": ["model_version.created", "model_version_tag.set"], "status": "ACTIVE"})
    assert r.status_code == 302
    hook.refresh_from_db()
    assert hook.name == "ops2" and hook.events == ["model_version.created", "model_version_tag.set"] and hook.has_secret
    r = c.post(reverse("monitoring:webhook_test", args=[hook.pk]), {"event": "model_version_tag.set"}, **HX)
    assert r.status_code == 200 and "Test event sent: HTTP 200" in r.content.decode() and "<html" not in r.content.decode()
    assert len(receiver.requests) == 1
    assert c.get(reverse("monitoring:webhook_test", args=[hook.pk])).status_code == 405
    r = c.post(reverse("monitoring:webhook_delete", args=[hook.pk]))
    assert r.status_code == 302
    assert c.get(url).status_code == 404


def test_delivery_log_filters_and_redeliver(admin, owner, receiver, hook, make_version, django_assert_max_num_queries):
    receiver.respond(500)
    make_version("a")
    make_version("b")
    c = browser(admin)
    r = c.get(reverse("monitoring:delivery_list"), {"status": "retrying", "model": "a"})
    assert r.status_code == 200
    rows = list(r.context["page"])
    assert [d.model_name for d in rows] == ["a"]
    r = c.get(reverse("monitoring:delivery_list"), {"status": "RETRYING"}, **HX)
    assert r.content.decode().lstrip().startswith('<div id="delivery-table">')
    delivery = WebhookDelivery.objects.get(model_name="a")
    receiver.respond(200)
    r = c.post(reverse("monitoring:delivery_redeliver", args=[delivery.pk]), **HX)
    assert r.status_code == 200 and f'id="delivery-{delivery.pk}"' in r.content.decode() and "DELIVERED" in r.content.decode()
    assert c.get(reverse("monitoring:delivery_redeliver", args=[delivery.pk])).status_code == 405
    r = c.get(reverse("monitoring:delivery_detail", args=[delivery.pk]))
    assert r.status_code == 200 and r.content.decode().count("<tr>") >= 2
    assert browser(owner).get(reverse("monitoring:delivery_detail", args=[delivery.pk])).status_code == 404
    assert browser(owner).post(reverse("monitoring:delivery_redeliver", args=[delivery.pk])).status_code == 404
    # A flat number of queries however many rows.
    for name in "cdefg":
        make_version(name)
    with django_assert_max_num_queries(12):
        assert c.get(reverse("monitoring:delivery_list")).status_code == 200


def test_audit_page(admin, owner, make_version):
    make_version("m")
    c = browser(admin)
    r = c.get(reverse("monitoring:audit_log"), {"model": "m"})
    assert r.status_code == 200
    html = r.content.decode()
    assert "Chain intact" in html and "model_version.created" in html
    r = c.get(reverse("monitoring:audit_log"), {"type": "registered_model."}, **HX)
    assert r.content.decode().lstrip().startswith('<div id="audit-table">') and "model_version.created" not in r.content.decode()
    r = c.get(reverse("monitoring:audit_log"), {"since": "not a date"})
    assert r.status_code == 200 and "Invalid value" in r.content.decode()
    r = c.get(reverse("monitoring:audit_export"), {"model": "m"})
    assert r.status_code == 200 and b'"type": "model_version.created"' in b"".join(r.streaming_content)
    assert browser(owner).get(reverse("monitoring:audit_log")).status_code == 403
    assert browser(owner).get(reverse("monitoring:audit_export")).status_code == 403
    assert c.post(reverse("monitoring:audit_log")).status_code == 405


def test_audit_page_shows_a_broken_chain(admin, owner, make_version):
    from django.db import connection

    from monitoring.models import AuditRecord

    make_version("m")
    c = browser(admin)
    assert "Chain intact" in c.get(reverse("monitoring:audit_log")).content.decode()
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {AuditRecord._meta.db_table} SET actor_name = 'mallory' WHERE seq = 1")
    html = c.get(reverse("monitoring:audit_log"), {"verify": "1"}).content.decode()
    assert "Chain broken" in html and "TAMPERED at seq 1" in html
    # Without a cached verdict (expired, or the head moved) a plain view walks the chain itself.
    from django.core.cache import cache

    cache.clear()
    assert "Chain broken" in c.get(reverse("monitoring:audit_log")).content.decode()


def test_watch_partial_and_watch_list(data_scientist, make_version):
    make_version("m")
    factories.grant(RegisteredModel.objects.get(name="m"), "CAN_READ", user=data_scientist)
    c = browser(data_scientist)
    url = reverse("monitoring:model_watch", args=["m"])
    r = c.get(url, **HX)
    assert r.status_code == 200 and 'id="watch-button"' in r.content.decode() and ">Watch<" in r.content.decode()
    r = c.post(url, {"action": "watch"}, **HX)
    assert ">Unwatch<" in r.content.decode() and Watch.objects.filter(user=data_scientist).count() == 1
    assert "m" in c.get(reverse("monitoring:watch_list")).content.decode()
    r = c.post(url, {"action": "unwatch", "next": reverse("monitoring:watch_list")})
    assert r.status_code == 302 and not Watch.objects.exists()
    assert c.get(reverse("monitoring:model_watch", args=["missing"])).status_code == 404


def test_history_page(owner, make_version):
    make_version("m")
    from registry import services as registry

    registry.set_registered_model_alias(name="m", alias="champion", version=1, user=owner)
    from tracking.models import now_ms

    c = browser(owner)
    url = reverse("monitoring:model_history", args=["m"])
    r = c.get(url, {"alias": "champion", "at": str(now_ms() + 1000)}, **HX)
    assert r.status_code == 200
    html = r.content.decode()
    assert html.lstrip().startswith('<section id="point-in-time"') and "pointed at <strong>version 1</strong>" in html
    r = c.get(url, {"stage": "Production", "at": "garbage"})
    assert r.status_code == 200 and "Invalid value garbage" in r.content.decode()
    r = c.post(url, {"alias": "champion"})
    assert r.status_code == 200 and "no previous holder" in r.content.decode()


def test_pages_need_login(client, hook):
    r = client.get(reverse("monitoring:webhook_list"))
    assert r.status_code == 302 and "/login/" in r["Location"]


def test_model_panel_include_renders_with_only_the_model(owner, make_version):
    from django.template.loader import render_to_string
    from django.test import RequestFactory

    from registry.models import RegisteredModel

    make_version("m")
    request = RequestFactory().get("/")
    request.user = owner
    html = render_to_string("monitoring/_model_panel.html", {"model": RegisteredModel.objects.get(name="m")}, request=request)
    assert 'hx-get="/monitoring/models/m/watch"' in html and 'href="/monitoring/models/m/history"' in html
    # What the lazy loads fetch: the partials alone.
    c = browser(owner)
    assert c.get("/monitoring/models/m/watch", **HX).content.decode().lstrip().startswith('<form id="watch-button"')
    assert c.get("/monitoring/models/m/history", **HX).content.decode().lstrip().startswith('<section id="point-in-time"')
