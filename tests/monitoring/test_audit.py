"""The audit chain: one record per event in the event's transaction, append-only, and tampering
(edit, delete, insert through raw SQL) found by verify_audit at the right row."""

import io
import json

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from monitoring import audit
from monitoring.models import AuditHead, AuditRecord
from registry import services as registry
from registry.models import Event

pytestmark = pytest.mark.django_db


def _changes(owner, make_version, n=3):
    make_version("m")
    for i in range(n):
        registry.set_registered_model_tag(name="m", key=f"k{i}", value=str(i), user=owner)


def run_verify() -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except SystemExit as exc:
        return exc.code, err.getvalue()
    return 0, out.getvalue()


def test_every_event_is_an_audit_record_in_a_chain(owner, make_version):
    _changes(owner, make_version)
    events = list(Event.objects.order_by("id"))
    records = list(AuditRecord.objects.order_by("seq"))
    assert [r.event_id for r in records] == [e.pk for e in events]
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert records[0].prev_hash == audit.GENESIS
    for before, after in zip(records, records[1:]):
        assert after.prev_hash == before.hash
    assert records[-1].type == "registered_model_tag.set" and records[-1].actor_name == "owner"
    assert json.loads(records[-1].payload) == {"key": "k2", "value": "2"}
    head = AuditHead.objects.get()
    assert (head.seq, head.hash) == (records[-1].seq, records[-1].hash)
    code, out = run_verify()
    assert code == 0 and f"{len(records)} audit records" in out


def test_the_record_rolls_back_with_the_change(owner, make_version):
    make_version("m")
    before = AuditRecord.objects.count()
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            registry.set_registered_model_tag(name="m", key="k", value="v", user=owner)
            raise RuntimeError("abort")
    assert AuditRecord.objects.count() == before
    assert audit.verify().ok


def test_append_only_through_the_orm(owner, make_version):
    _changes(owner, make_version, 1)
    record = AuditRecord.objects.first()
    record.type = "x"
    with pytest.raises(TypeError):
        record.save()
    with pytest.raises(TypeError):
        record.delete()
    with pytest.raises(TypeError):
        AuditRecord.objects.filter(pk=record.pk).update(type="x")
    with pytest.raises(TypeError):
        AuditRecord.objects.all().delete()


def _sql(statement, params=()):
    with connection.cursor() as cursor:
        cursor.execute(statement.replace("{t}", AuditRecord._meta.db_table), params)


def test_edited_row_is_found(owner, make_version):
    _changes(owner, make_version)
    target = AuditRecord.objects.get(seq=3)
    _sql("UPDATE {t} SET payload = %s WHERE id = %s", ['{"key":"k0","value":"tampered"}', target.pk])
    verdict = audit.verify()
    assert not verdict.ok and verdict.kind == "changed" and verdict.seq == 3 and verdict.record_id == target.pk
    code, err = run_verify()
    assert code == 1 and "TAMPERED at seq 3" in err and "content changed" in err


def test_edit_that_recomputes_its_own_hash_breaks_the_next_link(owner, make_version):
    _changes(owner, make_version)
    target = AuditRecord.objects.get(seq=2)
    values = {f: getattr(target, f) for f in audit.FIELDS}
    values["actor_name"] = "someone-else"
    _sql("UPDATE {t} SET actor_name = %s, hash = %s WHERE id = %s", ["someone-else", audit.hash_of(values), target.pk])
    verdict = audit.verify()
    assert not verdict.ok and verdict.seq == 3 and verdict.kind == "inserted"  # seq 3 no longer links


def test_deleted_row_is_found(owner, make_version):
    _changes(owner, make_version)
    _sql("DELETE FROM {t} WHERE seq = 2")
    verdict = audit.verify()
    assert not verdict.ok and verdict.kind == "removed" and verdict.seq == 2
    code, err = run_verify()
    assert code == 1 and "seq 2 removed" in err


def test_deleted_last_row_is_found(owner, make_version):
    _changes(owner, make_version)
    last = AuditRecord.objects.order_by("-seq").first()
    _sql("DELETE FROM {t} WHERE id = %s", [last.pk])
    verdict = audit.verify()
    assert not verdict.ok and verdict.kind == "removed" and verdict.seq == last.seq


def test_inserted_row_is_found(owner, make_version):
    _changes(owner, make_version)
    victim = AuditRecord.objects.get(seq=2)
    # A forged record slipped in as a second seq 2, with a correctly computed hash of its own.
    forged = {f: getattr(victim, f) for f in audit.FIELDS}
    forged["type"] = "registered_model_tag.deleted"
    forged["hash"] = audit.hash_of(forged)
    cols = ", ".join(forged)
    _sql(f"INSERT INTO {{t}} ({cols}) VALUES ({', '.join(['%s'] * len(forged))})", list(forged.values()))
    verdict = audit.verify()
    assert not verdict.ok and verdict.kind == "inserted" and verdict.seq == 2
    assert verdict.record_id != victim.pk
    code, err = run_verify()
    assert code == 1 and "TAMPERED at seq 2" in err


def test_appended_row_beyond_the_head_is_found(owner, make_version):
    _changes(owner, make_version)
    last = AuditRecord.objects.order_by("-seq").first()
    forged = {f: getattr(last, f) for f in audit.FIELDS}
    forged.update(seq=last.seq + 1, prev_hash=last.hash, type="alias.set", event_id=None)
    forged["hash"] = audit.hash_of(forged)
    cols = ", ".join(forged)
    _sql(f"INSERT INTO {{t}} ({cols}) VALUES ({', '.join(['%s'] * len(forged))})", list(forged.values()))
    verdict = audit.verify()
    assert not verdict.ok and verdict.kind == "inserted" and verdict.seq == last.seq + 1


def test_export_json_lines(admin, admin_api, api, owner, make_version):
    _changes(owner, make_version)
    response = admin_api.get("/api/2.0/stagegate/audit/export", {"model": "m", "type": "registered_model_tag"})
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [r["payload"]["key"] for r in lines] == ["k0", "k1", "k2"]
    assert all(set(r) >= {"seq", "hash", "prev_hash", "type", "actor", "created"} for r in lines)
    # Recompute the chain from the export alone: an external party can check it.
    for r in lines:
        values = {**r, "payload": audit.canonical(r["payload"]), "actor_name": r["actor"]}
        assert audit.hash_of(values) == r["hash"]
    denied = api.get("/api/2.0/stagegate/audit/export")
    assert denied.status_code == 403 and denied.json()["error_code"] == "PERMISSION_DENIED"
    verdict = admin_api.get("/api/2.0/stagegate/audit/verify").json()
    assert verdict["ok"] is True and verdict["checked"] == AuditRecord.objects.count()


def test_a_removal_hidden_by_recomputing_the_chain_is_found_through_the_outbox(owner, make_version):
    _changes(owner, make_version)
    victim = AuditRecord.objects.get(seq=3)
    _sql("DELETE FROM {t} WHERE id = %s", [victim.pk])
    # Re-number and re-hash everything after it, and move the head: the chain alone looks intact.
    prev = AuditRecord.objects.get(seq=2).hash
    for record in AuditRecord.objects.filter(seq__gt=3).order_by("seq"):
        values = {f: getattr(record, f) for f in audit.FIELDS}
        values.update(seq=record.seq - 1, prev_hash=prev)
        prev = audit.hash_of(values)
        _sql("UPDATE {t} SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s", [values["seq"], values["prev_hash"], prev, record.pk])
    last = AuditRecord.objects.order_by("-seq").first()
    AuditHead.objects.filter(pk=1).update(seq=last.seq, hash=last.hash)
    verdict = audit.verify()
    assert not verdict.ok and verdict.kind == "removed"
    assert f"registry event {victim.event_id} has no audit record" in verdict.problem


def test_an_append_inside_the_change_costs_one_statement_on_postgresql_and_no_savepoint(owner, make_version):
    from django.test.utils import CaptureQueriesContext

    _changes(owner, make_version, n=1)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        record = audit.append(type="webhook.created", created=1, payload={"url": "https://example.com"})
    sql = [q["sql"] for q in queries]
    # PostgreSQL: lock + advance the head, hash and insert the record, in one statement; elsewhere
    # lock + advance the head (reading its hash), insert the record, store the new hash
    assert len(sql) == (1 if connection.vendor == "postgresql" else 3) and not any("SAVEPOINT" in s for s in sql), sql
    assert "RETURNING" in sql[0] and ("sha256" in sql[0]) == (connection.vendor == "postgresql")
    previous = AuditRecord.objects.filter(seq=record.seq - 1).get()
    assert record.prev_hash == previous.hash
    stored = AuditRecord.objects.get(pk=record.pk)
    assert [getattr(stored, f) for f in (*audit.FIELDS, "hash")] == [getattr(record, f) for f in (*audit.FIELDS, "hash")]
    assert AuditHead.objects.values_list("hash", "prev_hash").get() == (record.hash, previous.hash)
    assert audit.verify().ok


def test_the_hash_computed_in_sql_is_the_one_verify_computes(db):
    """Text that JSON escapes (quotes, backslashes, newlines, control characters) and text it keeps as
    is (accents, CJK, emoji): the bytes PostgreSQL hashes are the bytes hash_of hashes."""
    odd = 'quote " backslash \\ newline \n tab \t nul-ish \x01 accent é cjk 模型 emoji 🚀 </script>'
    record = audit.append(type="alias.set", created=2**53, model_id=7, model_name=odd, version=3,
                          payload={"alias": odd, "nested": {"b": [1, 2.5, None, True], "a": odd}})
    stored = AuditRecord.objects.get(pk=record.pk)
    assert stored.hash == audit.hash_of({f: getattr(stored, f) for f in audit.FIELDS}) == record.hash
    assert (stored.alias, stored.model_name) == (odd, odd)
    assert audit.verify().ok


def test_the_first_append_ever_creates_the_head(db):
    assert not AuditHead.objects.exists()
    first = audit.append(type="webhook.created", created=1)
    second = audit.append(type="webhook.deleted", created=2)
    assert (first.seq, first.prev_hash) == (1, audit.GENESIS)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert AuditHead.objects.values_list("seq", "hash").get() == (2, second.hash)
    assert audit.verify().ok


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_unbroken_chain(owner):
    from tests.conftest import require_postgresql, run_together

    require_postgresql()
    for i in range(4):
        registry.create_registered_model(name=f"c{i}", user=owner)

    def writer(i):
        for n in range(10):
            registry.set_registered_model_tag(name=f"c{i}", key=f"k{n}", value=str(n), user=owner)

    assert run_together(writer, 4) == []
    assert list(AuditRecord.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, 45))
    assert audit.verify().ok
