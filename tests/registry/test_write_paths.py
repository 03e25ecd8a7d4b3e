"""The registry's write paths: tag upserts, the archive-on-transition batch, their statement counts."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from monitoring import audit
from registry import services
from registry.models import Event, ModelVersion, ModelVersionTag, RegisteredModelTag, StageTransition


def test_setting_a_version_tag_inserts_then_overwrites_and_keeps_the_others(owner, make_version):
    mv = make_version("m")
    services.set_model_version_tag(name="m", version=mv.version, key="k", value="1", user=owner)
    services.set_model_version_tag(name="m", version=mv.version, key="other", value="x", user=owner)
    tag = services.set_model_version_tag(name="m", version=mv.version, key="k", value="2", user=owner)
    assert tag.pk == ModelVersionTag.objects.get(version=mv, key="k").pk
    assert dict(ModelVersionTag.objects.filter(version=mv).values_list("key", "value")) == {"k": "2", "other": "x"}
    assert Event.objects.filter(type="model_version_tag.set").count() == 3


def test_setting_a_model_tag_inserts_then_overwrites(owner, make_version):
    make_version("m")
    services.set_registered_model_tag(name="m", key="k", value="1", user=owner)
    services.set_registered_model_tag(name="m", key="k", value="2", user=owner)
    assert list(RegisteredModelTag.objects.filter(model__name="m").values_list("key", "value")) == [("k", "2")]


def test_a_version_tag_costs_a_fixed_number_of_statements(owner, make_version, manual_on_commit):
    mv = make_version("m")
    with CaptureQueriesContext(connection) as queries:
        services.set_model_version_tag(name="m", version=mv.version, key="k", value="v", user=owner)
    sql = [q["sql"].split()[0] for q in queries if "SAVEPOINT" not in q["sql"]]
    # model and version locks (one message on PostgreSQL, model first), the upsert, the outbox row,
    # the audit append (1 on PostgreSQL)
    if connection.vendor == "postgresql":
        locks, append = ["SELECT"], ["WITH"]
        first = next(q["sql"] for q in queries if "SAVEPOINT" not in q["sql"])
        assert first.count("FOR UPDATE") == 2 and first.index("registry_registeredmodel") < first.index("registry_modelversion")
    else:
        locks, append = ["SELECT", "SELECT"], ["UPDATE", "INSERT", "UPDATE"]
    assert sql == [*locks, "INSERT", "INSERT", *append], [q["sql"][:90] for q in queries]
    assert "ON CONFLICT" in next(q["sql"] for q in queries if "registry_modelversiontag" in q["sql"])


def test_archiving_on_transition_moves_every_other_holder_and_records_them_after_the_change(owner, make_version):
    v1, v2, v3 = (make_version("m", stage="Production") for _ in range(3))
    services.transition_model_version_stage(name="m", version=v1.version, stage="Production", user=owner,
                                            archive_existing_versions=True)
    stages = dict(ModelVersion.objects.filter(registered_model__name="m").values_list("version", "current_stage"))
    assert stages == {v1.version: "Production", v2.version: "Archived", v3.version: "Archived"}
    system = StageTransition.objects.filter(is_system=True).order_by("id")
    assert [(t.version.version, t.to_stage) for t in system] == [(v2.version, "Archived"), (v3.version, "Archived")]
    last = list(Event.objects.order_by("-id")[:3])[::-1]
    assert [(e.version, e.payload["to_stage"], e.payload["is_system"]) for e in last] == [
        (v1.version, "Production", False), (v2.version, "Archived", True), (v3.version, "Archived", True)
    ]
    assert audit.verify().ok


def test_the_outbox_row_is_written_as_the_orm_would(owner, make_version, manual_on_commit):
    from registry.events import record_event

    mv = make_version("m")
    payload = {"key": "k", "value": "ü", "nested": {"n": [1, None, 2.5]}}
    event = record_event(type="model_version_tag.set", model=mv.registered_model, version=mv.version, actor=owner, payload=payload)
    stored = Event.objects.get(pk=event.pk)
    assert (stored.type, stored.model_id, stored.model_name, stored.version, stored.actor_id, stored.payload) == (
        "model_version_tag.set", mv.registered_model_id, "m", mv.version, owner.pk, payload
    )
    assert stored.created == event.created and stored.dispatched_at is None and stored.attempts == 0
    assert not event._state.adding
