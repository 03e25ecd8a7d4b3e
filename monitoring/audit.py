"""The tamper-evident audit chain: append, verify, export.

Every registry Event becomes one AuditRecord in the event's own transaction. Appends lock the
single AuditHead row (the `UPDATE … SET seq = seq + 1 … RETURNING` that also reads it), so records
get consecutive `seq` numbers in commit order and each one's `prev_hash` is the hash of the record
committed just before it. Services record their events last, so the lock is held from the end of
the change to its commit.

Why a head lock rather than building the chain later in one task: the record is then part of
the change's transaction (no committed change without its audit row, and no window in which a
change is visible but not yet chained), at the price of serialising registry writes from the
first event of a transaction to its commit. On PostgreSQL the append is one statement that hashes
the record in SQL (`_append_in_one_statement`), so the lock is held for that statement and the
commit only; on the write mix of `bench/compare.py` (8 writers) the three-statement append had
kept ~0.45 backends waiting on the head at any moment.
"""

import hashlib
import json
from dataclasses import dataclass

from django.db import connection, transaction

from monitoring.models import AuditHead, AuditRecord

GENESIS = "0" * 64
FIELDS = (
    "seq", "event_id", "type", "model_id", "model_name", "version", "actor_id", "actor_name", "created",
    "alias", "from_stage", "to_stage", "payload", "prev_hash",
)


def canonical(payload) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_of(values: dict) -> str:
    """The canonical text hashed for one record: every column but `id` and `hash`."""
    return canonical({f: values.get(f) for f in FIELDS})


def hash_of(values: dict) -> str:
    return hashlib.sha256(content_of(values).encode("utf-8")).hexdigest()


def _take_head() -> tuple[int, str]:
    """Lock the chain head and take the next seq in one statement; returns (seq, previous hash)."""
    table = connection.ops.quote_name(AuditHead._meta.db_table)
    sql = f"UPDATE {table} SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash"
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
        if row is None:  # the very first append
            AuditHead.objects.get_or_create(pk=1)
            cursor.execute(sql)
            row = cursor.fetchone()
    return row


_COLUMNS = (*FIELDS, "hash")


def _store(values: dict) -> int:
    """Insert the record and make its hash the head's (two statements). Returns the record's id."""
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qn(AuditRecord._meta.db_table)} ({', '.join(qn(c) for c in _COLUMNS)})"
            f" VALUES ({', '.join(['%s'] * len(_COLUMNS))}) RETURNING id",
            [values[c] for c in _COLUMNS],
        )
        record_id = cursor.fetchone()[0]
        cursor.execute(f"UPDATE {qn(AuditHead._meta.db_table)} SET hash = %s, prev_hash = %s WHERE id = 1",
                       [values["hash"], values["prev_hash"]])
        return record_id


def _content_around_link(values: dict) -> tuple[str, str, str]:
    """The canonical content of a record, minus the two values only the head knows: returns
    (before, between, after) such that content_of(values) == before + prev_hash + between + str(seq) + after.
    The keys are sorted, so `prev_hash` and `seq` sit side by side between `payload` and `to_stage`."""
    head = canonical({f: values.get(f) for f in FIELDS if f < "prev_hash"})
    tail = canonical({f: values.get(f) for f in FIELDS if f > "seq"})
    return head[:-1] + ',"prev_hash":"', '","seq":', "," + tail[1:]


def _append_in_one_statement(values: dict) -> tuple[int, int, str, str]:
    """PostgreSQL: lock and advance the head, hash the record in SQL (sha256 of the same UTF-8 bytes
    `hash_of` hashes) and insert it, in one statement, so the head lock is held from this statement
    to the commit and no longer. The head keeps the hash it had before (`prev_hash`): an UPDATE's
    RETURNING shows the new row only. Returns (record id, seq, prev_hash, hash), or None when the
    head row does not exist yet."""
    qn = connection.ops.quote_name
    head_table, record_table = qn(AuditHead._meta.db_table), qn(AuditRecord._meta.db_table)
    before, between, after = _content_around_link(values)
    known = [c for c in _COLUMNS if c not in ("seq", "prev_hash", "hash")]
    sql = (
        f"WITH head AS (UPDATE {head_table} SET seq = seq + 1, prev_hash = hash,"
        " hash = encode(sha256(convert_to(%s || hash || %s || (seq + 1)::text || %s, 'UTF8')), 'hex')"
        " WHERE id = 1 RETURNING seq, prev_hash, hash)"
        f" INSERT INTO {record_table} (seq, prev_hash, hash, {', '.join(qn(c) for c in known)})"
        f" SELECT head.seq, head.prev_hash, head.hash, {', '.join(['%s'] * len(known))} FROM head"
        " RETURNING id, seq, prev_hash, hash"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [before, between, after, *(values[c] for c in known)])
        return cursor.fetchone()


def append(*, type: str, created: int, event_id=None, model_id=None, model_name: str = "", version=None,
           actor=None, payload: dict | None = None) -> AuditRecord:
    """Append one record to the chain. Must run inside the transaction of the change it records
    (no savepoint of its own: a failed append fails the change); locks the chain head until that
    transaction ends. One statement on PostgreSQL (`_append_in_one_statement`); elsewhere three:
    lock and advance the head (reading the previous hash), insert the record, store its hash as the head's."""
    payload = payload or {}
    values = {
        "event_id": event_id,
        "type": type,
        "model_id": model_id,
        "model_name": model_name or "",
        "version": version,
        "actor_id": getattr(actor, "pk", None),
        "actor_name": getattr(actor, "username", "") or "",
        "created": int(created),
        "alias": str(payload.get("alias") or ""),
        "from_stage": str(payload.get("from_stage") or ""),
        "to_stage": str(payload.get("to_stage") or payload.get("stage") or ""),
        "payload": canonical(payload),
    }
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            row = _append_in_one_statement(values)
            if row is None:  # the very first append
                AuditHead.objects.get_or_create(pk=1)
                row = _append_in_one_statement(values)
            record_id, values["seq"], values["prev_hash"], values["hash"] = row
        else:
            values["seq"], values["prev_hash"] = _take_head()
            values["hash"] = hash_of(values)
            record_id = _store(values)
        record = AuditRecord(id=record_id, **values)
    record._state.adding, record._state.db = False, connection.alias
    return record


def record_event(event) -> AuditRecord:
    """The in-transaction hook: one audit record per registry Event."""
    return append(
        type=event.type,
        created=event.created,
        event_id=event.pk,
        model_id=event.model_id,
        model_name=event.model_name,
        version=event.version,
        actor=event.actor if event.actor_id else None,
        payload=event.payload,
    )


@dataclass
class Verdict:
    ok: bool
    checked: int
    head_seq: int
    problem: str = ""
    seq: int | None = None
    record_id: int | None = None
    kind: str = ""  # changed | removed | inserted

    def __str__(self):
        if self.ok:
            return f"OK: {self.checked} audit records, chain intact up to seq {self.head_seq}."
        where = f" at seq {self.seq}" if self.seq is not None else ""
        row = f" (row id {self.record_id})" if self.record_id is not None else ""
        return f"TAMPERED{where}{row}: {self.problem}"


def _raw_rows(batch: int = 2000):
    """Rows straight from SQL in chain order (no ORM conversions that could hide a change)."""
    table = AuditRecord._meta.db_table
    cols = ", ".join(["id", "hash", *FIELDS])
    last_seq, last_id = -1, -1
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {cols} FROM {table} WHERE seq > %s OR (seq = %s AND id > %s) ORDER BY seq, id LIMIT %s",
                [last_seq, last_seq, last_id, batch],
            )
            rows = cursor.fetchall()
        if not rows:
            return
        names = ["id", "hash", *FIELDS]
        for row in rows:
            yield dict(zip(names, row))
        last_seq, last_id = rows[-1][names.index("seq")], rows[-1][0]


def verify() -> Verdict:
    """Walk the chain from the genesis and report the first record that was changed, removed or inserted."""
    head = AuditHead.objects.filter(pk=1).values_list("seq", "hash").first() or (0, GENESIS)
    head_seq, head_hash = head
    prev_hash, expected_seq, checked, last = GENESIS, 1, 0, None
    for row in _raw_rows():
        seq = row["seq"]
        if seq < expected_seq:
            return Verdict(False, checked, head_seq, f"a second record with seq {seq}: inserted", seq, row["id"], "inserted")
        if seq > expected_seq:
            missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
            return Verdict(False, checked, head_seq, f"record(s) seq {missing} removed before this one", expected_seq, row["id"], "removed")
        if row["prev_hash"] != prev_hash:
            return Verdict(False, checked, head_seq, "prev_hash does not link to the record before it: inserted or re-chained", seq, row["id"], "inserted")
        computed = hash_of(row)
        if computed != row["hash"]:
            return Verdict(False, checked, head_seq, f"content changed (stored hash {row['hash'][:12]}…, computed {computed[:12]}…)", seq, row["id"], "changed")
        prev_hash, expected_seq, checked, last = row["hash"], seq + 1, checked + 1, row
    last_seq = last["seq"] if last else 0
    if last_seq < head_seq:
        return Verdict(False, checked, head_seq, f"record(s) seq {last_seq + 1}..{head_seq} removed from the end", last_seq + 1, None, "removed")
    if last_seq > head_seq or (last and last["hash"] != head_hash):
        return Verdict(False, checked, head_seq, "records after the chain head: inserted", head_seq + 1, None, "inserted")
    missing = _unrecorded_event()
    if missing is not None:
        # The chain itself is consistent, so it was rebuilt after a removal: the outbox still has the event.
        return Verdict(False, checked, head_seq, f"registry event {missing} has no audit record: removed and the chain re-computed",
                       None, None, "removed")
    return Verdict(True, checked, head_seq)


def _unrecorded_event() -> int | None:
    """The first registry Event, since the chain began, without its audit record (None when complete)."""
    from django.db.models import Exists, OuterRef

    from registry.models import Event

    first = AuditRecord.objects.filter(event_id__isnull=False).order_by("seq").values_list("event_id", flat=True).first()
    if first is None:
        return None
    return (
        Event.objects.filter(pk__gte=first)
        .exclude(Exists(AuditRecord.objects.filter(event_id=OuterRef("pk"))))
        .order_by("pk").values_list("pk", flat=True).first()
    )


def to_json(record: AuditRecord) -> dict:
    return {
        "seq": record.seq, "event_id": record.event_id, "type": record.type, "model_id": record.model_id,
        "model_name": record.model_name, "version": record.version, "actor_id": record.actor_id,
        "actor": record.actor_name, "created": record.created, "alias": record.alias,
        "from_stage": record.from_stage, "to_stage": record.to_stage, "payload": json.loads(record.payload or "{}"),
        "prev_hash": record.prev_hash, "hash": record.hash,
    }


def export_lines(queryset):
    """JSON Lines, one record per line, in chain order (streamed in chunks)."""
    for record in queryset.order_by("seq", "id").iterator(chunk_size=1000):
        yield json.dumps(to_json(record), sort_keys=True, ensure_ascii=False) + "\n"
