"""Registry services: numbering, stages, aliases, events, registration, files."""

import threading

import pytest
from django.db import connections

from core.errors import AlreadyExists, DoesNotExist, InvalidParameter
from registry import events, services, tasks
from registry.models import Event, ModelVersion, RegisteredModel, Stage, StageTransition
from tests.conftest import require_postgresql
from tests.factories import grant
from tests.registry.conftest import write_model_dir
from tracking.models import Experiment, LoggedModel, LoggedModelTag, Run

pytestmark = pytest.mark.django_db


def stages_of(name):
    return dict(ModelVersion.objects.filter(registered_model__name=name).values_list("version", "current_stage"))


# --------------------------------------------------------------------------- registered models


def test_create_registered_model_and_duplicate(owner):
    model = services.create_registered_model(name="m", user=owner, description="d", tags=[{"key": "k", "value": "v"}])
    assert model.owner == owner and model.description == "d"
    assert list(model.tags.values_list("key", "value")) == [("k", "v")]
    with pytest.raises(AlreadyExists, match=r"^Registered Model \(name=m\) already exists\.$"):
        services.create_registered_model(name="m", user=owner)
    with pytest.raises(InvalidParameter, match="Missing value for required parameter 'name'"):
        services.create_registered_model(name="", user=owner)


def test_version_numbers_are_never_reused(owner, make_version):
    assert [make_version("m").version for _ in range(3)] == [1, 2, 3]
    services.delete_model_version(name="m", version=3, user=owner)
    services.delete_model_version(name="m", version=2, user=owner)
    assert make_version("m").version == 4
    assert RegisteredModel.objects.get(name="m").last_version == 4


def test_create_version_of_missing_model(owner):
    with pytest.raises(DoesNotExist, match=r"^Registered Model with name=nope not found$"):
        services.create_model_version(name="nope", source="mlflow-artifacts:/1/x", user=owner)


def test_rename_keeps_versions_aliases_and_files(owner, make_version, _artifact_root):
    mv = make_version("old")
    services.set_registered_model_alias(name="old", alias="champion", version=1, user=owner)
    path_before = mv.storage_path
    model = services.rename_registered_model(name="old", new_name="new", user=owner)
    mv.refresh_from_db()
    assert model.name == "new" and mv.registered_model.name == "new"
    assert mv.storage_path == path_before and (_artifact_root / path_before / "MLmodel").exists()
    assert mv.download_uri() == f"mlflow-artifacts:/{path_before}"
    assert services.get_model_version_by_alias(name="new", alias="champion", user=owner).pk == mv.pk
    with pytest.raises(DoesNotExist):
        services.get_latest_versions(name="old", user=owner)
    services.create_registered_model(name="other", user=owner)
    with pytest.raises(AlreadyExists, match=r"name=other"):
        services.rename_registered_model(name="new", new_name="other", user=owner)


def test_delete_registered_model_removes_versions_aliases_and_files(owner, make_version, _artifact_root):
    mv = make_version("m")
    make_version("m")
    services.set_registered_model_alias(name="m", alias="a", version=1, user=owner)
    assert (_artifact_root / mv.storage_path).exists()
    services.delete_registered_model(name="m", user=owner)
    assert not RegisteredModel.objects.filter(name="m").exists()
    assert not ModelVersion.objects.exists()
    assert not (_artifact_root / f"registry/{mv.registered_model_id}").exists()
    event = Event.objects.filter(type="registered_model.deleted").get()
    assert event.model is None and event.model_name == "m" and event.payload["versions"] == [2, 1]


def test_tags_set_overwrite_delete(owner, make_version):
    make_version("m")
    services.set_registered_model_tag(name="m", key="k", value="1", user=owner)
    services.set_registered_model_tag(name="m", key="k", value="2", user=owner)
    services.set_model_version_tag(name="m", version=1, key="v", value="x", user=owner)
    assert list(RegisteredModel.objects.get().tags.values_list("key", "value")) == [("k", "2")]
    services.delete_registered_model_tag(name="m", key="k", user=owner)
    services.delete_registered_model_tag(name="m", key="never-set", user=owner)  # not an error
    services.delete_model_version_tag(name="m", version=1, key="v", user=owner)
    assert not RegisteredModel.objects.get().tags.exists()
    assert not ModelVersion.objects.get().tags.exists()
    with pytest.raises(DoesNotExist, match=r"Model Version \(name=m, version=9\) not found"):
        services.set_model_version_tag(name="m", version=9, key="v", value="x", user=owner)


# --------------------------------------------------------------------------- aliases


def test_alias_moves_and_records_previous_holder(owner, make_version):
    make_version("m")
    make_version("m")
    services.set_registered_model_alias(name="m", alias="champion", version=1, user=owner)
    services.set_registered_model_alias(name="m", alias="champion", version=2, user=owner)
    assert services.get_model_version_by_alias(name="m", alias="champion", user=owner).version == 2
    events = list(Event.objects.filter(type="alias.set").order_by("id").values_list("payload", flat=True))
    assert [e["previous_version"] for e in events] == [None, 1]
    services.delete_registered_model_alias(name="m", alias="champion", user=owner)
    assert Event.objects.filter(type="alias.deleted").get().payload["previous_version"] == 2
    with pytest.raises(InvalidParameter, match=r"^Registered model alias champion not found\.$"):
        services.get_model_version_by_alias(name="m", alias="champion", user=owner)


@pytest.mark.parametrize(
    "alias, message",
    [
        ("latest", "'latest' alias name (case insensitive) is reserved."),
        ("LaTeSt", "'latest' alias name (case insensitive) is reserved."),
        ("v2", "Version alias name 'v2' is reserved."),
        ("V10", "Version alias name 'V10' is reserved."),
        ("has space", "Invalid alias name: 'has space'."),
    ],
)
def test_reserved_and_invalid_aliases(owner, make_version, alias, message):
    make_version("m")
    with pytest.raises(InvalidParameter) as info:
        services.set_registered_model_alias(name="m", alias=alias, version=1, user=owner)
    assert info.value.message.startswith(message)


def test_alias_to_missing_version(owner, make_version):
    make_version("m")
    with pytest.raises(DoesNotExist, match=r"^Model Version \(name=m, version=99\) not found$"):
        services.set_registered_model_alias(name="m", alias="a", version=99, user=owner)


def test_deleting_a_version_drops_its_aliases(owner, make_version):
    make_version("m")
    services.set_registered_model_alias(name="m", alias="a", version=1, user=owner)
    services.delete_model_version(name="m", version=1, user=owner)
    assert Event.objects.filter(type="alias.deleted").get().payload["alias"] == "a"
    with pytest.raises(InvalidParameter):
        services.get_model_version_by_alias(name="m", alias="a", user=owner)


# --------------------------------------------------------------------------- stages


def test_transition_is_case_insensitive_and_bumps_timestamps(owner, make_version):
    mv = make_version("m")
    model_before = RegisteredModel.objects.get().last_updated_timestamp
    result = services.transition_model_version_stage(name="m", version=1, stage="sTaGiNg", user=owner)
    assert result.current_stage == "Staging"
    mv.refresh_from_db()
    assert mv.current_stage == "Staging"
    assert mv.last_updated_timestamp >= mv.creation_timestamp
    assert RegisteredModel.objects.get().last_updated_timestamp >= model_before


def test_invalid_stage_lists_the_valid_ones(owner, make_version):
    make_version("m")
    with pytest.raises(InvalidParameter) as info:
        services.transition_model_version_stage(name="m", version=1, stage="Bogus", user=owner)
    assert info.value.message == (
        "Invalid Model Version stage: Bogus. Value must be one of None, Staging, Production, Archived."
    )


def test_custom_stage_is_accepted_and_listed(owner, make_version):
    make_version("m")
    Stage.objects.create(name="Canary", order=15)
    assert services.transition_model_version_stage(name="m", version=1, stage="canary", user=owner).current_stage == "Canary"
    with pytest.raises(InvalidParameter, match="one of None, Staging, Canary, Production, Archived"):
        services.transition_model_version_stage(name="m", version=1, stage="Bogus", user=owner)


def test_archive_existing_only_touches_the_target_stage(owner, make_version):
    make_version("m", stage="Production")  # v1
    make_version("m", stage="Staging")  # v2
    make_version("m", stage="Production")  # v3 (v1 still Production: no flag)
    make_version("m")  # v4
    assert stages_of("m") == {1: "Production", 2: "Staging", 3: "Production", 4: "None"}
    services.transition_model_version_stage(name="m", version=4, stage="Production", user=owner, archive_existing_versions=True)
    assert stages_of("m") == {1: "Archived", 2: "Staging", 3: "Archived", 4: "Production"}
    system = StageTransition.objects.filter(is_system=True).order_by("version__version")
    assert [(t.version.version, t.from_stage, t.to_stage) for t in system] == [(1, "Production", "Archived"), (3, "Production", "Archived")]
    manual = StageTransition.objects.filter(is_system=False, version__version=4).get()
    assert (manual.from_stage, manual.to_stage, manual.user) == ("None", "Production", owner)
    events = Event.objects.filter(type="model_version.stage_transitioned").order_by("id")
    assert [e.payload["is_system"] for e in events][-3:] == [False, True, True]


def test_transition_calls_the_governance_guard(owner, make_version, monkeypatch):
    from approvals import policy
    from core.errors import PermissionDenied

    make_version("m")
    seen = []

    def guard(*, version, stage, user):
        seen.append((version.version, stage, user))
        raise PermissionDenied("Production needs an approved request")

    monkeypatch.setattr(policy, "check_direct_transition", guard)
    with pytest.raises(PermissionDenied):
        services.transition_model_version_stage(name="m", version=1, stage="production", user=owner)
    assert seen == [(1, "Production", owner)]
    assert stages_of("m") == {1: "None"}
    assert not StageTransition.objects.exists()
    # An approved request is carried out without asking again.
    services.transition_model_version_stage(name="m", version=1, stage="Production", user=owner, request_id=7)
    assert StageTransition.objects.get().request_id == 7


def test_get_latest_versions_per_stage(owner, make_version):
    for stage in ["Staging", "Archived", "Production", None, "Staging"]:
        make_version("m", stage=stage)
    latest = services.get_latest_versions(name="m", user=owner)
    assert [(mv.version, mv.current_stage) for mv in latest] == [(2, "Archived"), (3, "Production"), (4, "None"), (5, "Staging")]
    only = services.get_latest_versions(name="m", user=owner, stages=["staging", "ARCHIVED"])
    assert [mv.version for mv in only] == [2, 5]


# --------------------------------------------------------------------------- registration


def test_registration_copies_files_and_parses_mlmodel(owner, make_version, _artifact_root):
    mv = make_version("m")
    assert mv.status == ModelVersion.READY and mv.status_message == ""
    assert mv.storage_path == f"registry/{mv.registered_model_id}/1"
    assert (_artifact_root / mv.storage_path / "MLmodel").exists()
    assert mv.file_count == 2 and mv.size_bytes > 0 and len(mv.checksum) == 64
    assert set(mv.flavors) == {"python_function", "sklearn"}
    assert mv.signature["inputs"]
    assert Event.objects.filter(type="model_version.ready", version=1).exists()


def test_registration_without_mlmodel_is_ready_with_what_inspection_found(owner, make_version, model_files):
    source = model_files("0/r/artifacts/not-a-model", with_mlmodel=False)
    mv = make_version("m", source=source)
    assert mv.status == ModelVersion.READY and mv.status_message == "" and mv.flavors == {}
    assert mv.inspection == "Not an MLflow model: no MLmodel file at the source."
    assert mv.file_count == 1 and not mv.is_external
    assert Event.objects.filter(type="model_version.ready").exists()


def test_a_storage_failure_fails_the_version_which_can_be_archived_and_deleted(owner, make_version, model_files, monkeypatch):
    from core import artifacts
    from core.errors import InvalidState

    def broken(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(artifacts, "copy_tree", broken)
    mv = make_version("m", source=model_files("0/r/artifacts/model"))
    assert mv.status == ModelVersion.FAILED and "disk on fire" in mv.status_message
    assert Event.objects.filter(type="model_version.failed").exists()
    with pytest.raises(InvalidState, match="failed registration and cannot move to Production"):
        services.transition_model_version_stage(name="m", version=mv.version, stage="Production", user=owner)
    assert services.transition_model_version_stage(name="m", version=mv.version, stage="Archived", user=owner).current_stage == "Archived"
    services.delete_model_version(name="m", version=mv.version, user=owner)
    assert not ModelVersion.objects.filter(pk=mv.pk).exists()


def test_registration_is_enqueued_after_commit(owner, manual_on_commit, model_files, django_capture_on_commit_callbacks):
    services.create_registered_model(name="m", user=owner)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        mv = services.create_model_version(name="m", source=model_files(), user=owner)
        mv.refresh_from_db()
        assert mv.status == ModelVersion.PENDING  # nothing ran before commit
    assert [cb for cb in callbacks if cb is events.request_registration] == [events.request_registration]
    mv.refresh_from_db()
    assert mv.status == ModelVersion.READY


def test_a_broker_outage_after_commit_leaves_a_pending_version_the_sweep_finishes(api, model_files, monkeypatch):
    api.post("registered-models/create", {"name": "m"})

    def down(*args, **kwargs):
        raise ConnectionError("redis is down")

    with monkeypatch.context() as patched:
        patched.setattr(tasks.register_pending, "delay", down)
        patched.setattr(tasks.dispatch_events, "delay", down)
        r = api.post("model-versions/create", {"name": "m", "source": model_files()})
    assert r.status_code == 200 and r.json()["model_version"]["status"] == "PENDING_REGISTRATION"
    ModelVersion.objects.update(creation_timestamp=0)
    assert tasks.sweep_pending_registrations() == 1
    assert ModelVersion.objects.get().status == "READY"


def test_sources_outside_the_store_are_ready_references_and_never_fetched(owner, make_version, monkeypatch):
    from core import artifacts

    def no_fetch(*args, **kwargs):
        raise AssertionError("an external source must never be read")

    monkeypatch.setattr(artifacts, "copy_tree", no_fetch)
    mv = make_version("m", source="s3://bucket/model")
    assert mv.status == ModelVersion.READY and mv.is_external and mv.download_uri() == "s3://bucket/model"
    assert mv.inspection.startswith("External source, not copied")
    moved = services.transition_model_version_stage(name="m", version=mv.version, stage="Production", user=owner)
    assert moved.current_stage == "Production"


def test_filesystem_paths_are_for_superusers_and_only_inside_the_store(owner, admin, make_version):
    from core.errors import PermissionDenied

    with pytest.raises(PermissionDenied, match="only administrators may register a filesystem path"):
        make_version("m", source="/etc/passwd-dir")
    with pytest.raises(InvalidParameter, match="outside the server's artifact store"):
        make_version("m", source="/etc/passwd-dir", user=admin)
    with pytest.raises(DoesNotExist, match="Run with id=0{32} not found"):
        make_version("m", source="runs:/" + "0" * 32 + "/model")
    assert ModelVersion.objects.count() == 0


def test_registration_is_idempotent(owner, make_version):
    mv = make_version("m")
    stamp = mv.last_updated_timestamp
    assert tasks.register_model_version(mv.pk) == "READY"
    mv.refresh_from_db()
    assert mv.last_updated_timestamp == stamp
    assert Event.objects.filter(type="model_version.ready").count() == 1


def _run_with_model(owner, root, *, logged=False):
    exp = Experiment.objects.create(name="e", artifact_location="mlflow-artifacts:/1")
    grant(exp, "CAN_MANAGE", user=owner)
    run = Run.objects.create(experiment=exp, artifact_uri=f"mlflow-artifacts:/{exp.pk}/runid/artifacts")
    if logged:
        lm = LoggedModel.objects.create(
            experiment=exp, name="model", source_run=run, artifact_location=f"mlflow-artifacts:/{exp.pk}/models/m-x/artifacts"
        )
        write_model_dir(root, f"{exp.pk}/models/m-x/artifacts")
        return run, lm
    write_model_dir(root, f"{exp.pk}/runid/artifacts/model")
    return run, None


def test_runs_source_resolves_and_download_uri_survives_deleting_run_artifacts(owner, _artifact_root):
    import shutil

    run, _ = _run_with_model(owner, _artifact_root)
    services.create_registered_model(name="m", user=owner)
    mv = services.create_model_version(name="m", source=f"runs:/{run.run_uuid}/model", run_id=run.run_uuid, user=owner)
    mv.refresh_from_db()
    assert mv.status == "READY" and mv.source_run_id == run.run_uuid
    shutil.rmtree(_artifact_root / str(run.experiment_id))
    uri = mv.download_uri()
    assert uri == f"mlflow-artifacts:/registry/{mv.registered_model_id}/1"
    assert (_artifact_root / uri.split(":/", 1)[1] / "MLmodel").exists()


def test_logged_model_source_fills_run_id_and_tags_the_logged_model(owner, _artifact_root):
    run, lm = _run_with_model(owner, _artifact_root, logged=True)
    services.create_registered_model(name="m", user=owner)
    mv = services.create_model_version(name="m", source=f"models:/{lm.model_id}", model_id=lm.model_id, user=owner)
    mv.refresh_from_db()
    assert mv.status == "READY" and mv.run_id == run.run_uuid and mv.model_id == lm.model_id
    tag = LoggedModelTag.objects.get(model=lm, key="mlflow.modelVersions")
    assert '"name": "m"' in tag.value and '"version": 1' in tag.value
    # runs:/<run>/model also finds the logged model the run produced (3.x layout).
    mv2 = services.create_model_version(name="m", source=f"runs:/{run.run_uuid}/model", user=owner)
    mv2.refresh_from_db()
    assert mv2.status == "READY" and mv2.checksum == mv.checksum


def test_model_id_must_exist(owner):
    services.create_registered_model(name="m", user=owner)
    with pytest.raises(DoesNotExist):
        services.create_model_version(name="m", source="models:/m-" + "a" * 32, model_id="m-" + "a" * 32, user=owner)


# --------------------------------------------------------------------------- events and dispatch


def test_events_are_written_in_the_transaction_and_dispatch_is_enqueued_after_commit(
    owner, manual_on_commit, django_capture_on_commit_callbacks, monkeypatch
):
    enqueued = []
    monkeypatch.setattr(tasks.dispatch_events, "delay", lambda: enqueued.append(1))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.create_registered_model(name="m", user=owner)
        services.set_registered_model_tag(name="m", key="k", value="v", user=owner)
        # The rows exist before commit (same transaction), nothing is enqueued yet.
        assert list(Event.objects.values_list("type", flat=True)) == ["registered_model.created", "registered_model_tag.set"]
        assert enqueued == []
    # Both services ran inside the test's one transaction: a single dispatch, however many events.
    assert len(callbacks) == 1
    callbacks[0]()
    assert enqueued == [1]


def test_a_failed_service_writes_no_event(owner):
    services.create_registered_model(name="m", user=owner)
    before = Event.objects.count()
    with pytest.raises(AlreadyExists):
        services.create_registered_model(name="m", user=owner)
    with pytest.raises(InvalidParameter):
        services.set_registered_model_alias(name="m", alias="latest", version=1, user=owner)
    assert Event.objects.count() == before


def test_dispatch_is_idempotent_and_claims_once(owner, manual_on_commit):
    from registry import events

    delivered = []
    events.register_hook(hook := delivered.extend)
    try:
        services.create_registered_model(name="m", user=owner)
        services.set_registered_model_tag(name="m", key="k", value="v", user=owner)
        assert tasks.dispatch_events() == 2
        assert tasks.dispatch_events() == 0  # a second worker finds nothing to claim
        assert [e.type for e in delivered] == ["registered_model.created", "registered_model_tag.set"]
        assert all(e.dispatched_at is not None for e in Event.objects.all())
        assert tasks.claim() == []
    finally:
        events.NOTIFICATION_HOOKS.remove(hook)


def test_failed_delivery_is_retried_after_the_lease(owner, manual_on_commit):
    from datetime import timedelta

    from django.utils import timezone

    from registry import events

    def broken(batch):
        raise RuntimeError("webhook down")

    events.register_hook(broken)
    try:
        services.create_registered_model(name="m", user=owner)
        assert tasks.dispatch_events() == 0
    finally:
        events.NOTIFICATION_HOOKS.remove(broken)
    event = Event.objects.get()
    assert event.dispatched_at is None and event.attempts == 1
    assert tasks.dispatch_events() == 0  # still leased
    Event.objects.update(claimed_until=timezone.now() - timedelta(seconds=1), created=0)
    assert tasks.sweep_events() is True
    event.refresh_from_db()
    assert event.dispatched_at is not None and event.attempts == 2


def test_sweep_requeues_stale_pending_registrations(owner, manual_on_commit, model_files, monkeypatch):
    services.create_registered_model(name="m", user=owner)
    mv = services.create_model_version(name="m", source=model_files(), user=owner)
    assert tasks.sweep_pending_registrations() == 0  # too fresh
    ModelVersion.objects.filter(pk=mv.pk).update(creation_timestamp=0)
    assert tasks.sweep_pending_registrations() == 1
    mv.refresh_from_db()
    assert mv.status == "READY"


def test_a_claimed_registration_is_left_alone_until_its_lease_lapses(owner, manual_on_commit, model_files):
    """A run that is copying a version holds it: a second run (or a redelivered message) and the
    sweep skip it; once the claim lapses (the run died) the next run finishes it."""
    services.create_registered_model(name="m", user=owner)
    first = services.create_model_version(name="m", source=model_files(), user=owner)
    second = services.create_model_version(name="m", source=model_files(), user=owner)
    assert tasks.claim_registrations(limit=1) == [first.pk]  # a run took the first and died
    ModelVersion.objects.update(creation_timestamp=0)
    assert tasks.sweep_pending_registrations() == 1  # only the second is free...
    assert ModelVersion.objects.get(pk=second.pk).status == "READY"  # ...and the run it started took only that
    assert ModelVersion.objects.get(pk=first.pk).status == "PENDING_REGISTRATION"
    assert tasks.register_pending() == 0 and tasks.sweep_pending_registrations() == 0
    ModelVersion.objects.filter(pk=first.pk).update(registration_claimed_until=1)  # the lease lapsed
    assert tasks.register_pending() == 1
    assert ModelVersion.objects.get(pk=first.pk).status == "READY"


def test_one_registration_run_serves_a_burst_of_versions(owner, manual_on_commit, model_files):
    services.create_registered_model(name="m", user=owner)
    versions = [services.create_model_version(name="m", source=model_files(), user=owner) for _ in range(tasks.REGISTRATION_BATCH + 3)]
    assert tasks.register_pending() == len(versions)  # two claims, the second one short
    assert set(ModelVersion.objects.values_list("status", flat=True)) == {"READY"}
    assert tasks.register_pending() == 0


# --------------------------------------------------------------------------- concurrency (PostgreSQL)


@pytest.mark.django_db(transaction=True)
def test_concurrent_version_creates_get_distinct_numbers(owner, model_files):
    require_postgresql()
    services.create_registered_model(name="hot", user=owner)
    source = model_files()
    errors, barrier = [], threading.Barrier(10)

    def worker(n):
        try:
            barrier.wait() if n < 10 else None
            services.create_model_version(name="hot", source=source, user=owner)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    numbers = sorted(ModelVersion.objects.filter(registered_model__name="hot").values_list("version", flat=True))
    assert numbers == list(range(1, 51))
    assert RegisteredModel.objects.get(name="hot").last_version == 50


def test_other_source_forms_resolve(owner, admin, make_version, model_files, _artifact_root):
    from core.errors import PermissionDenied

    first = make_version("a")
    # Another registered version, by models:/<name>/<version> (and by stage).
    copy = make_version("b", source="models:/a/1")
    assert copy.status == "READY" and copy.checksum == first.checksum and copy.source == "models:/a/1"
    # A store-relative path; a file: URI inside the store only from a superuser.
    model_files("0/plain/artifacts/model")
    assert make_version("c", source="0/plain/artifacts/model").status == "READY"
    with pytest.raises(PermissionDenied):
        make_version("c", source=f"file://{_artifact_root}/0/plain/artifacts/model")
    via_file = make_version("c", source=f"file://{_artifact_root}/0/plain/artifacts/model", user=admin)
    assert via_file.status == "READY", via_file.status_message
    # `..` never escapes the store: refused before anything is written (MLflow's text).
    with pytest.raises(InvalidParameter, match="without relative path references"):
        make_version("c", source="0/../../etc")
    assert ModelVersion.objects.filter(registered_model__name="c").count() == 2