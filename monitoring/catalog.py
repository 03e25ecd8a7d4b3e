"""The event vocabulary of both webhook flavors, and how one registry Event maps onto it.

MLflow names are `entity.action` (on the REST wire: `{"entity": "MODEL_VERSION", "action": "CREATED"}`);
only MLflow's own combinations are accepted there, because the real client refuses to parse any
other. Databricks names are upper-case strings; its 12 plus the events neither product has
(request decisions, deletions, alias changes) live in that vocabulary.
"""

import json
from datetime import UTC, datetime

# MLflow 3.x: entity -> actions (mlflow/entities/webhook.py VALID_ENTITY_ACTIONS).
MLFLOW_EVENTS = {
    "registered_model": {"created"},
    "model_version": {"created"},
    "model_version_tag": {"set", "deleted"},
    "model_version_alias": {"created", "deleted"},
    "prompt": {"created"},
    "prompt_version": {"created"},
    "prompt_tag": {"set", "deleted"},
    "prompt_version_tag": {"set", "deleted"},
    "prompt_alias": {"created", "deleted"},
    "budget_policy": {"exceeded"},
}
MODEL_ENTITIES = {"registered_model", "model_version", "model_version_tag", "model_version_alias"}
MLFLOW_EVENT_NAMES = sorted(f"{e}.{a}" for e, actions in MLFLOW_EVENTS.items() for a in actions)

DATABRICKS_EVENTS = [
    "MODEL_VERSION_CREATED",
    "MODEL_VERSION_TRANSITIONED_STAGE",
    "TRANSITION_REQUEST_CREATED",
    "COMMENT_CREATED",
    "REGISTERED_MODEL_CREATED",
    "MODEL_VERSION_TAG_SET",
    "MODEL_VERSION_TRANSITIONED_TO_STAGING",
    "MODEL_VERSION_TRANSITIONED_TO_PRODUCTION",
    "MODEL_VERSION_TRANSITIONED_TO_ARCHIVED",
    "TRANSITION_REQUEST_TO_STAGING_CREATED",
    "TRANSITION_REQUEST_TO_PRODUCTION_CREATED",
    "TRANSITION_REQUEST_TO_ARCHIVED_CREATED",
]
# Ours: what neither MLflow nor Databricks sends.
EXTRA_EVENTS = [
    "TRANSITION_REQUEST_APPROVED",
    "TRANSITION_REQUEST_REJECTED",
    "TRANSITION_REQUEST_CANCELLED",
    "MODEL_VERSION_DELETED",
    "REGISTERED_MODEL_DELETED",
    "MODEL_VERSION_ALIAS_SET",
    "MODEL_VERSION_ALIAS_DELETED",
    "MODEL_VERSION_TAG_DELETED",
]
DATABRICKS_EVENT_NAMES = DATABRICKS_EVENTS + EXTRA_EVENTS
REGISTRY_WIDE_ONLY = {"REGISTERED_MODEL_CREATED"}

_STAGE_SUFFIX = {"Staging": "STAGING", "Production": "PRODUCTION", "Archived": "ARCHIVED"}


def mlflow_event_to_wire(name: str) -> dict:
    entity, action = name.split(".", 1)
    return {"entity": entity.upper(), "action": action.upper()}


def mlflow_event_from_wire(obj) -> str | None:
    """{"entity": "MODEL_VERSION", "action": "CREATED"} -> "model_version.created" (None if invalid)."""
    if isinstance(obj, str):
        entity, _, action = obj.partition(".")
    elif isinstance(obj, dict):
        entity, action = obj.get("entity"), obj.get("action")
        if not isinstance(entity, str) or not isinstance(action, str):
            return None
    else:
        return None
    entity, action = entity.lower(), action.lower()
    if action in MLFLOW_EVENTS.get(entity, ()):
        return f"{entity}.{action}"
    return None


def _p(event) -> dict:
    return event.payload or {}


def _request_type(event_type: str) -> str | None:
    """approvals writes `transition_request.<created|approved|rejected|cancelled>` (any spelling of cancel)."""
    if not event_type.startswith("transition_request."):
        return None
    action = event_type.split(".", 1)[1]
    return {"canceled": "cancelled", "deleted": "cancelled"}.get(action, action)


def names_for(event, flavor: str) -> list[str]:
    """The names under which `event` (a registry Event, or anything with type/payload) is published."""
    t, p = event.type, _p(event)
    if flavor == "mlflow":
        return {
            "registered_model.created": ["registered_model.created"],
            "model_version.created": ["model_version.created"],
            "model_version_tag.set": ["model_version_tag.set"],
            "model_version_tag.deleted": ["model_version_tag.deleted"],
            "alias.set": ["model_version_alias.created"],
            "alias.deleted": ["model_version_alias.deleted"],
        }.get(t, [])
    names = []
    if t == "registered_model.created":
        names.append("REGISTERED_MODEL_CREATED")
    elif t == "registered_model.deleted":
        names.append("REGISTERED_MODEL_DELETED")
    elif t == "model_version.created":
        names.append("MODEL_VERSION_CREATED")
    elif t == "model_version.deleted":
        names.append("MODEL_VERSION_DELETED")
    elif t == "model_version_tag.set":
        names.append("MODEL_VERSION_TAG_SET")
    elif t == "model_version_tag.deleted":
        names.append("MODEL_VERSION_TAG_DELETED")
    elif t == "alias.set":
        names.append("MODEL_VERSION_ALIAS_SET")
    elif t == "alias.deleted":
        names.append("MODEL_VERSION_ALIAS_DELETED")
    elif t == "model_version.stage_transitioned":
        names.append("MODEL_VERSION_TRANSITIONED_STAGE")
        suffix = _STAGE_SUFFIX.get(p.get("to_stage"))
        if suffix:
            names.append(f"MODEL_VERSION_TRANSITIONED_TO_{suffix}")
    elif t in ("comment.created", "comment.added"):
        names.append("COMMENT_CREATED")
    else:
        action = _request_type(t)
        if action == "created":
            names.append("TRANSITION_REQUEST_CREATED")
            suffix = _STAGE_SUFFIX.get(p.get("to_stage") or p.get("stage"))
            if suffix:
                names.append(f"TRANSITION_REQUEST_TO_{suffix}_CREATED")
        elif action in ("approved", "rejected", "cancelled"):
            names.append(f"TRANSITION_REQUEST_{action.upper()}")
    return names


def _version_str(event) -> str | None:
    return str(event.version) if event.version is not None else None


def mlflow_data(event, name: str) -> dict:
    """`data` of MLflow's envelope, in the shapes of mlflow/webhooks/types.py (plus extra context)."""
    p = _p(event)
    if name == "registered_model.created":
        return {"name": event.model_name, "tags": p.get("tags") or {}, "description": p.get("description")}
    if name == "model_version.created":
        return {
            "name": event.model_name, "version": _version_str(event), "source": p.get("source"),
            "run_id": p.get("run_id"), "tags": p.get("tags") or {}, "description": p.get("description"),
        }
    if name == "model_version_tag.set":
        return {"name": event.model_name, "version": _version_str(event), "key": p.get("key"), "value": p.get("value")}
    if name == "model_version_tag.deleted":
        return {"name": event.model_name, "version": _version_str(event), "key": p.get("key")}
    if name == "model_version_alias.created":
        previous = p.get("previous_version")
        return {
            "name": event.model_name, "alias": p.get("alias"), "version": _version_str(event),
            "previous_version": str(previous) if previous is not None else None,
        }
    if name == "model_version_alias.deleted":
        return {"name": event.model_name, "alias": p.get("alias")}
    return {"name": event.model_name}


def text_for(event) -> str:
    """One human sentence per event: Databricks' `text` field, e-mail lines, the audit page."""
    p, name, v = _p(event), event.model_name, event.version
    who = f" by {event.actor.username}" if getattr(event, "actor", None) is not None else ""
    mv = f"Registered model '{name}' version {v}"
    t = event.type
    if t == "registered_model.created":
        return f"Registered model '{name}' was created{who}."
    if t == "registered_model.deleted":
        return f"Registered model '{name}' was deleted{who}."
    if t == "registered_model.renamed":
        return f"Registered model '{p.get('old_name')}' was renamed to '{p.get('new_name')}'{who}."
    if t == "model_version.created":
        return f"{mv} was created{who}."
    if t == "model_version.deleted":
        return f"{mv} was deleted{who}."
    if t == "model_version.ready":
        return f"{mv} finished registration."
    if t == "model_version.failed":
        return f"{mv} failed registration: {p.get('message', '')}"
    if t == "model_version.stage_transitioned":
        return f"{mv} transitioned from {p.get('from_stage')} to {p.get('to_stage')}{who}."
    if t == "model_version_tag.set":
        return f"Tag '{p.get('key')}' was set to '{p.get('value')}' on {mv[0].lower()}{mv[1:]}{who}."
    if t == "model_version_tag.deleted":
        return f"Tag '{p.get('key')}' was deleted from {mv[0].lower()}{mv[1:]}{who}."
    if t == "registered_model_tag.set":
        return f"Tag '{p.get('key')}' was set to '{p.get('value')}' on registered model '{name}'{who}."
    if t == "registered_model_tag.deleted":
        return f"Tag '{p.get('key')}' was deleted from registered model '{name}'{who}."
    if t == "registered_model.description_changed":
        return f"The description of registered model '{name}' was changed{who}."
    if t == "model_version.description_changed":
        return f"The description of {mv[0].lower()}{mv[1:]} was changed{who}."
    if t.startswith("comment."):
        return f"A comment on {mv[0].lower()}{mv[1:]} was {t.split('.', 1)[1]}{who}: {p.get('comment', '')}".rstrip(": ")
    if t == "alias.set":
        prev = p.get("previous_version")
        moved = f" (previously version {prev})" if prev not in (None, v) else ""
        return f"Alias '{p.get('alias')}' of registered model '{name}' now points at version {v}{moved}{who}."
    if t == "alias.deleted":
        return f"Alias '{p.get('alias')}' of registered model '{name}' was removed (was version {p.get('previous_version', v)}){who}."
    action = _request_type(t)
    if action:
        stage = p.get("to_stage") or p.get("stage")
        if action == "created":
            return f"A transition of {mv[0].lower()}{mv[1:]} to {stage} was requested{who}."
        return f"The request to move {mv[0].lower()}{mv[1:]} to {stage} was {action}{who}."
    return f"{t} on registered model '{name}'" + (f" version {v}" if v is not None else "") + f"{who}."


def databricks_payload(event, name: str, webhook_id: str) -> dict:
    """Databricks' flat payload: event, webhook_id, event_timestamp, model_name, version, event fields, text."""
    p = _p(event)
    body = {"event": name, "webhook_id": str(webhook_id), "event_timestamp": event.created, "model_name": event.model_name}
    if event.version is not None:
        body["version"] = str(event.version)
    for key in ("to_stage", "from_stage", "comment", "alias", "previous_version", "key", "value", "request_id"):
        if p.get(key) not in (None, ""):
            body[key] = str(p[key]) if key == "previous_version" else p[key]
    if "stage" in p and "to_stage" not in body:
        body["to_stage"] = p["stage"]
    if event.type == "model_version_tag.set":
        body["tags"] = [{"key": p.get("key"), "value": p.get("value")}]
    body["text"] = text_for(event)
    return body


def render_body(event, name: str, *, flavor: str, webhook_id) -> str:
    """The exact bytes of one delivery (stored once, re-sent verbatim on every retry)."""
    if flavor == "mlflow":
        entity, action = name.split(".", 1)
        envelope = {
            "entity": entity,
            "action": action,
            "timestamp": datetime.fromtimestamp(event.created / 1000, UTC).isoformat(),
            "data": mlflow_data(event, name),
        }
        return json.dumps(envelope)
    return json.dumps(databricks_payload(event, name, webhook_id))


class ExampleEvent:
    """A stand-in event for "send test event" (never written to the registry)."""

    def __init__(self, name: str, *, flavor: str, model_name: str = "example_model"):
        from tracking.models import now_ms

        self.model_name = model_name
        self.version = 1
        self.created = now_ms()
        self.actor = None
        self.payload = {"source": "models:/m-example", "run_id": "abcd1234abcd5678", "tags": {"example_key": "example_value"},
                        "description": "An example model version", "key": "example_key", "value": "example_value",
                        "alias": "example_alias", "previous_version": None, "from_stage": "Staging", "to_stage": "Production",
                        "comment": "test event"}
        self.type = _type_for(name, flavor)


def _type_for(name: str, flavor: str) -> str:
    if flavor == "mlflow":
        return {
            "registered_model.created": "registered_model.created",
            "model_version.created": "model_version.created",
            "model_version_tag.set": "model_version_tag.set",
            "model_version_tag.deleted": "model_version_tag.deleted",
            "model_version_alias.created": "alias.set",
            "model_version_alias.deleted": "alias.deleted",
        }.get(name, name)
    if name.startswith("MODEL_VERSION_TRANSITIONED"):
        return "model_version.stage_transitioned"
    if name.startswith("TRANSITION_REQUEST") and name.endswith("CREATED"):
        return "transition_request.created"
    return {
        "REGISTERED_MODEL_CREATED": "registered_model.created",
        "REGISTERED_MODEL_DELETED": "registered_model.deleted",
        "MODEL_VERSION_CREATED": "model_version.created",
        "MODEL_VERSION_DELETED": "model_version.deleted",
        "MODEL_VERSION_TAG_SET": "model_version_tag.set",
        "MODEL_VERSION_TAG_DELETED": "model_version_tag.deleted",
        "MODEL_VERSION_ALIAS_SET": "alias.set",
        "MODEL_VERSION_ALIAS_DELETED": "alias.deleted",
        "COMMENT_CREATED": "comment.created",
        "TRANSITION_REQUEST_APPROVED": "transition_request.approved",
        "TRANSITION_REQUEST_REJECTED": "transition_request.rejected",
        "TRANSITION_REQUEST_CANCELLED": "transition_request.cancelled",
    }.get(name, name)
