"""E-mail: reviewers of a new request, the requester on a decision, watchers of a model; digests batch
a burst into one mail per person per window."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from approvals import services as approvals
from monitoring import services
from monitoring.models import Notification
from registry import services as registry
from registry.models import RegisteredModel
from tests import factories

pytestmark = pytest.mark.django_db


def _mails_to(user):
    return [m for m in mail.outbox if user.email in m.to]


def test_reviewers_get_the_new_request_and_the_requester_the_decision(owner, reviewer, data_scientist, admin, make_version):
    make_version("churn")
    model = RegisteredModel.objects.get(name="churn")
    approvals.grant_permission(obj=model, level="CAN_READ", user=data_scientist)
    approvals.grant_permission(obj=model, level="CAN_MANAGE_PRODUCTION_VERSIONS", user=reviewer)
    mail.outbox.clear()
    approvals.request_stage_transition(name="churn", version=1, stage="Production", user=data_scientist, comment="ship it")
    assert len(_mails_to(reviewer)) == 1
    assert len(_mails_to(owner)) == 1 and len(_mails_to(admin)) == 1
    assert _mails_to(data_scientist) == [], "the requester does not review their own request"
    message = _mails_to(reviewer)[0]
    assert "transition of registered model 'churn' version 1 to Production was requested by data_scientist" in message.subject
    assert "[Review requested]" in message.body and "/models/churn/" in message.body

    mail.outbox.clear()
    approvals.reject_transition_request(name="churn", version=1, stage="Production", user=reviewer, comment="metrics too low")
    [decision] = _mails_to(data_scientist)
    assert "was rejected by reviewer" in decision.subject and "[Decision on your request]" in decision.body
    assert _mails_to(reviewer) == [], "never mail the actor"


def test_watchers_get_every_event_and_can_unwatch(owner, data_scientist, make_version):
    make_version("m")
    factories.grant(RegisteredModel.objects.get(name="m"), "CAN_READ", user=data_scientist)
    services.watch_model(user=data_scientist, name="m")
    services.watch_model(user=data_scientist, name="m")  # idempotent
    mail.outbox.clear()
    registry.set_registered_model_alias(name="m", alias="champion", version=1, user=owner)
    [message] = _mails_to(data_scientist)
    assert "Alias 'champion' of registered model 'm' now points at version 1 by owner" in message.subject
    services.unwatch_model(user=data_scientist, name="m")
    mail.outbox.clear()
    registry.set_registered_model_tag(name="m", key="k", value="v", user=owner)
    assert mail.outbox == []


def test_a_burst_becomes_one_digest_per_window(owner, data_scientist, make_version, settings):
    settings.STAGEGATE_EMAIL_BATCH_SECONDS = 60
    make_version("m")
    factories.grant(RegisteredModel.objects.get(name="m"), "CAN_READ", user=data_scientist)
    services.watch_model(user=data_scientist, name="m")
    mail.outbox.clear()
    for i in range(5):
        registry.set_registered_model_tag(name="m", key=f"k{i}", value="v", user=owner)
    assert mail.outbox == [], "held for the batch window"
    assert Notification.objects.filter(user=data_scientist, sent_at__isnull=True).count() == 5
    assert services.sweep()["digests"] == 0
    # The window passes.
    Notification.objects.filter(user=data_scientist).update(created_at=timezone.now() - timedelta(seconds=61))
    assert services.sweep()["digests"] == 1
    [digest] = mail.outbox
    assert digest.subject == "[Stagegate] 5 registry changes"
    assert all(f"Tag 'k{i}'" in digest.body for i in range(5))
    # Another change right after: not a second mail within the window, even when forced.
    registry.set_registered_model_tag(name="m", key="late", value="v", user=owner)
    Notification.objects.filter(sent_at__isnull=True).update(created_at=timezone.now() - timedelta(seconds=61))
    assert services.send_digest(user_id=data_scientist.pk) == 0
    assert len(mail.outbox) == 1
    Notification.objects.filter(user=data_scientist).exclude(sent_at=None).update(sent_at=timezone.now() - timedelta(seconds=61))
    assert services.send_digest(user_id=data_scientist.pk) == 1
    assert len(mail.outbox) == 2 and "late" in mail.outbox[1].subject


def test_a_failed_send_hands_the_lines_back(owner, data_scientist, make_version, monkeypatch):
    make_version("m")
    factories.grant(RegisteredModel.objects.get(name="m"), "CAN_READ", user=data_scientist)
    services.watch_model(user=data_scientist, name="m")

    def boom(self, *a, **k):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", boom)
    registry.set_registered_model_tag(name="m", key="k", value="v", user=owner)  # the change itself is not disturbed
    monkeypatch.undo()
    pending = Notification.objects.filter(user=data_scientist, sent_at__isnull=True)
    assert pending.count() == 1
    assert services.send_digest(user_id=data_scientist.pk) == 1
    assert len(_mails_to(data_scientist)) == 1


def test_watchers_hear_about_the_models_deletion(owner, data_scientist, make_version):
    make_version("doomed")
    factories.grant(RegisteredModel.objects.get(name="doomed"), "CAN_READ", user=data_scientist)
    services.watch_model(user=data_scientist, name="doomed")
    mail.outbox.clear()
    registry.delete_registered_model(name="doomed", user=owner)
    [message] = _mails_to(data_scientist)
    assert "Registered model 'doomed' was deleted by owner" in message.subject


def test_the_requester_hears_of_an_approval(owner, reviewer, data_scientist, make_version):
    make_version("churn")
    model = RegisteredModel.objects.get(name="churn")
    approvals.grant_permission(obj=model, level="CAN_READ", user=data_scientist)
    approvals.grant_permission(obj=model, level="CAN_MANAGE", user=reviewer)
    approvals.request_stage_transition(name="churn", version=1, stage="Staging", user=data_scientist)
    mail.outbox.clear()
    approvals.approve_transition_request(name="churn", version=1, stage="Staging", user=reviewer, archive_existing_versions=False)
    [decision] = _mails_to(data_scientist)
    assert "to Staging was approved by reviewer" in decision.subject
