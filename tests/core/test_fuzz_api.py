"""Fuzzing as a test: generated bodies and query strings against every JSON API endpoint.

The endpoints come from the URL resolver (every route under api/ whose view is an `api_view`), so a
new endpoint is fuzzed without touching this file. For each request it asserts: no 5xx; a 4xx is
MLflow's error JSON {"error_code": str, "message": str}; and a refused write (4xx on a non-GET) leaves
every tracking/registry/approvals/monitoring table with the row counts it had before.

Bounded: STAGEGATE_FUZZ_EXAMPLES (default 12) examples per endpoint (~1,050 requests, 30-50 s), derandomized so CI is
reproducible; raise it locally for a deeper run. STAGEGATE_FUZZ_REPORT=<file> writes the counts.
On PostgreSQL (CI) NUL bytes and int64 bounds meet the real column types.
"""

import inspect
import json
import os
import re
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core.services import create_api_token

EXAMPLES = int(os.environ.get("STAGEGATE_FUZZ_EXAMPLES", "12"))
ROOT = Path(__file__).resolve().parents[2]
WRITE_CHECKED_APPS = ("tracking", "registry", "approvals", "monitoring")


# --------------------------------------------------------------------------- the endpoints


def api_endpoints() -> list[tuple[str, object]]:
    """(route, view) for every api_view under api/ (ajax-api/ mounts the same views)."""
    found = []

    def walk(patterns, prefix):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern) and hasattr(p.callback, "allowed_methods"):
                found.append((prefix + str(p.pattern), p.callback))

    walk(get_resolver().url_patterns, "")
    return [(route, view) for route, view in found if route.startswith("api/")]


def fields_in(text: str) -> set[str]:
    """The request fields a piece of API source reads."""
    names = set(re.findall(r'params\.\w+\(\s*"(\w+)"', text))
    names |= set(re.findall(r'\(params,\s*"(\w+)"', text))
    names |= set(re.findall(r'\bget\("(\w+)"', text))
    # The shared readers' implicit fields.
    for call, field in (("_name(params)", "name"), ("params.run_id(", "run_id"), ("_version(params)", "version"),
                        ("_tags(params)", "tags"), ("_tag_value(params)", "value"), ("params.version(", "version")):
        if call in text:
            names.add(field)
    return names


def field_names() -> list[str]:
    """Every request field the API reads (scanned from the source, so new fields are fuzzed too)."""
    names = set()
    for path in [*ROOT.glob("*/api.py"), ROOT / "tracking" / "artifacts.py"]:
        names |= fields_in(path.read_text())
    return sorted(names | {"name", "new_name", "key", "value", "tags", "metrics", "params", "timestamp", "step"})


def own_fields(view) -> list[str]:
    try:
        return sorted(fields_in(inspect.getsource(inspect.unwrap(view))))
    except (OSError, TypeError):
        return []


# --------------------------------------------------------------------------- what is sent

NASTY = [
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfff", "a\nb", "tab\there", "\r\n", "\x7f", "\x85",
    "\u202egnp.exe", "\u2066x\u2069", "\u2028", ".", "..", "a/../b", "/etc/passwd", "a//b", "a/", "./a",
    "100%", "a?b", "a#b", "a b", "模型", "🚀", "x" * 300, "y" * 7000, "NaN", "-1", "0", "1",
    "99999999999999999999", "9223372036854775808", "-9223372036854775809", "9223372036854775807",
    "true", "null", "[]", "{}", "None", "Staging", "Production", "Archived", "READY", "FINISHED",
    "mlflow-artifacts:/1", "file:///etc", "mlflow-artifacts:/../../etc", "s3://bucket/x", "runs:/x/y",
    "models:/fuzz-model/1", "name = 'x'", "name LIKE '%\x00'", "metrics.m > 1", "tags.`a\x00` = 'x'",
    "attributes.name DESC", "params.p = 'a'", "metrics.m ASC", "creation_timestamp DESC",
    "2026-01-01T00:00:00Z", "MODEL_VERSION_CREATED", "CAN_MANAGE", "champion", "latest", "v1",
]
INTS = [0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**20, -(10**20)]
SUBFIELDS = ["key", "value", "timestamp", "step", "field_name", "ascending", "dataset", "dataset_name",
             "dataset_digest", "digest", "source", "source_type", "model_id", "name", "tags", "level",
             "user_name", "group_name", "permission_level", "stage", "events", "url"]


ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=12)  # surrogates and controls too


def leaf(known: list):
    return st.one_of(
        st.sampled_from(NASTY),
        st.sampled_from(known),
        ANY_TEXT,
        st.sampled_from(INTS),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.none(),
    )


def json_value(known: list):
    return st.recursive(
        leaf(known),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(SUBFIELDS) | ANY_TEXT, inner, max_size=4),
        max_leaves=8,
    )


def deep(n: int) -> bytes:
    return b'{"name": ' + b"[" * n + b"]" * n + b"}"


RAW_BODIES = [
    b"{not json", b"\xff\xfe{}", b"[1, 2]", b"5", b'"{\\"name\\": \\"x\\"}"', b'{"name": "x"', b"null", b"",
    deep(70), deep(100_000), b'{"a": ' * 70 + b"1" + b"}" * 70, b'{"name": "\\ud800"}', b'{"name": "a\\u0000b"}',
    b'{"timestamp": 99999999999999999999, "value": 1, "key": "m", "step": 99999999999999999999}',
    b'{"name": 1' + b"0" * 5000 + b"}",
    b'{"key": "k", "value": "' + b"v" * 3_000_000 + b'"}',  # over DATA_UPLOAD_MAX_MEMORY_SIZE
]


class Strategies:
    """Built once: constructing strategies inside every draw cost more than the requests themselves."""

    def __init__(self, fields: list, good: dict, known: list, path_values: dict):
        self.leaf = leaf(known)
        self.json = json_value(known)
        self.query_values = st.lists(self.leaf.map(str), min_size=1, max_size=2)
        self.extra_json = st.dictionaries(st.sampled_from(fields) | ANY_TEXT, self.json, max_size=2)
        self.extra_query = st.dictionaries(st.sampled_from(fields) | ANY_TEXT, self.query_values, max_size=2)
        self.good = {field: st.sampled_from(values) for field, values in good.items()}
        self.segments = {name: st.sampled_from(values + NASTY[1:]) | st.text(min_size=1, max_size=8)
                         for name, values in path_values.items()}
        self.other_segment = st.sampled_from(NASTY[1:]) | st.text(min_size=1, max_size=8)
        self.roll = st.integers(0, 9)
        self.any_method = st.sampled_from(["GET", "POST", "PATCH", "PUT", "DELETE"])
        self.raw = st.sampled_from(RAW_BODIES)


@st.composite
def requests(draw, s: Strategies, route: str, methods: tuple, own: list):
    method = draw(st.sampled_from(methods)) if draw(s.roll) else draw(s.any_method)

    def segment(match):
        converter, name = match.group(1) or "str", match.group(2)
        value = draw(s.segments.get(name, s.other_segment))
        return quote(value.encode("utf-8", "surrogatepass"), safe="/" if converter == "path" else "")

    url = "/" + re.sub(r"<(?:(\w+):)?(\w+)>", segment, route)
    if method == "GET" or draw(s.roll) == 0:
        query = {}
        for field in own:
            roll = draw(s.roll)
            if roll < 6 and field in s.good:
                value = draw(s.good[field])
                query[field] = value if isinstance(value, list) else [value]
            elif roll < 9:
                query[field] = draw(s.query_values)
        query.update(draw(s.extra_query))
        if query:
            url += "?" + urlencode(query, doseq=True, errors="surrogatepass")
    body = b""
    if method != "GET":
        if draw(s.roll) == 0:
            body = draw(s.raw)
        else:
            # Mostly a valid request with a few fields made nasty, so the input reaches the services.
            data = {}
            for field in own:
                roll = draw(s.roll)
                if roll < 6 and field in s.good:
                    data[field] = draw(s.good[field])
                elif roll < 9:
                    data[field] = draw(s.json)
            data.update(draw(s.extra_json))
            body = json.dumps(data, allow_nan=True).encode()
    return method, url, body


# --------------------------------------------------------------------------- the world it runs in


def row_counts() -> tuple:
    tables = [m._meta.db_table for app in WRITE_CHECKED_APPS for m in apps.get_app_config(app).get_models()
              if m._meta.managed and not m._meta.proxy]
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {qn(t)})" for t in tables))
        return tuple(zip(tables, cursor.fetchone()))


def seed(client: Client, headers: dict) -> tuple[list, dict, dict]:
    """A few real objects, so generated requests also reach past "not found"."""

    def post(path, body, method="post"):
        r = getattr(client, method)("/api/2.0/mlflow/" + path, json.dumps(body), content_type="application/json", **headers)
        assert r.status_code == 200, (path, r.content[:300])
        return r.json()

    exp_id = post("experiments/create", {"name": "fuzz-exp"})["experiment_id"]
    run = post("runs/create", {"experiment_id": exp_id, "run_name": "fuzz-run"})["run"]["info"]
    post("runs/log-batch", {"run_id": run["run_id"], "metrics": [{"key": "m", "value": 1.5, "timestamp": 1, "step": 0}],
                            "params": [{"key": "p", "value": "a"}], "tags": [{"key": "t", "value": "x"}]})
    post("registered-models/create", {"name": "fuzz-model", "tags": [{"key": "k", "value": "v"}]})
    post("model-versions/create", {"name": "fuzz-model", "source": run["artifact_uri"], "run_id": run["run_id"]})
    post("registered-models/alias", {"name": "fuzz-model", "alias": "champion", "version": "1"})
    model_id = post("logged-models", {"experiment_id": exp_id, "name": "fuzz-lm"})["model"]["info"]["model_id"]
    known = [exp_id, "0", run["run_id"], "fuzz-model", "fuzz-exp", "1", "champion", model_id, "m", "p", "t", "k",
             ["m"], [exp_id], [run["run_id"]], [{"key": "t2", "value": "y"}],
             [{"key": "m", "value": 2.0, "timestamp": 2, "step": 1}]]
    path_values = {"model_id": [model_id], "object_id": [exp_id, "fuzz-model"], "tag_key": ["t"],
                   "artifact_path": [f"{exp_id}/{run['run_id']}/artifacts/x.txt"], "webhook_id": []}
    run_id = run["run_id"]
    metric = {"key": "m", "value": 2.0, "timestamp": 2, "step": 1}
    good = {
        "name": ["fuzz-model", "new-model"], "new_name": ["renamed"], "experiment_id": [exp_id], "experiment_ids": [[exp_id]],
        "experiment_name": ["fuzz-exp"], "run_id": [run_id], "run_uuid": [run_id], "run_ids": [[run_id]], "version": ["1"],
        "key": ["t", "m", "p2"], "value": ["x", 3.0], "alias": ["champion", "challenger"], "stage": ["Staging", "Production"],
        "timestamp": [1, 2], "step": [0, 1], "metric_key": ["m"], "tags": [[{"key": "t2", "value": "y"}]],
        "metrics": [[metric]], "params": [[{"key": "p3", "value": "b"}]], "source": [run["artifact_uri"]],
        "model_id": [model_id], "status": ["FINISHED", "READY"], "filter": ["name = 'fuzz-model'", "metrics.m > 0"],
        "order_by": [["name ASC"], [{"field_name": "name", "ascending": True}]], "max_results": [10],
        "archive_existing_versions": [True], "comment": ["why"], "description": ["d"], "url": ["http://127.0.0.1:9/hook"],
        "events": [["MODEL_VERSION_CREATED"]], "start_time": [1], "end_time": [2], "run_name": ["r2"],
        "artifact_location": ["mlflow-artifacts:/99"], "datasets": [[{"dataset": {"name": "d", "digest": "x", "source_type": "local", "source": "s"}}]],
    }
    return known, path_values, good


# --------------------------------------------------------------------------- the test


@pytest.mark.django_db(transaction=True)
def test_every_endpoint_survives_generated_input(admin, caplog):
    client = Client(raise_request_exception=False)
    headers = {"HTTP_AUTHORIZATION": "Bearer " + create_api_token(user=admin, name="fuzz")[1]}
    known, path_values, good = seed(client, headers)
    strategies = Strategies(field_names(), good, known, path_values)
    endpoints = api_endpoints()
    assert len(endpoints) > 60, "the resolver walk found too few endpoints"
    tried, statuses, failures = Counter(), Counter(), []
    started = time.monotonic()

    for route, view in endpoints:
        # The deadline catches a request that hangs (a pathological filter, say), with room for a loaded CI machine.
        @hsettings(max_examples=EXAMPLES, deadline=timedelta(seconds=10), database=None, derandomize=True,
                   suppress_health_check=list(HealthCheck))
        @given(req=requests(strategies, route, view.allowed_methods, own_fields(view)))
        def fuzz(req):
            method, url, body = req
            write = method != "GET"
            before = row_counts() if write else None
            response = client.generic(method, url, body, content_type="application/json", **headers)
            tried[route] += 1
            statuses[response.status_code // 100 * 100] += 1
            problem = None
            # MLflow's own deliberate answer for multipart/presigned transfers the store cannot do is a
            # 501 NOT_IMPLEMENTED with its error JSON: a refusal, not a failure.
            deliberate_501 = response.status_code == 501 and b'"NOT_IMPLEMENTED"' in response.content
            if response.status_code >= 500 and not deliberate_501:
                problem = "5xx"
            elif response.status_code >= 400:
                try:
                    data = json.loads(response.content)
                    ok = isinstance(data.get("error_code"), str) and isinstance(data.get("message"), str)
                except (ValueError, AttributeError):
                    ok = False
                if not ok:
                    problem = "not MLflow's error JSON"
                elif write and row_counts() != before:
                    changed = [(t, a, b) for (t, a), (_, b) in zip(before, row_counts()) if a != b]
                    problem = f"refused write changed rows {changed}"
            if problem:
                failures.append((problem, response.status_code, method, url[:200], body[:200], response.content[:300]))

        fuzz()

    elapsed = time.monotonic() - started
    # core.api's DataError backstop answers 400, but the value should have been refused before the database.
    failures += [("reached the database", 400, r.getMessage()[:300]) for r in caplog.records
                 if r.name == "stagegate.api" and "database refused" in r.getMessage()]
    fives = sum(1 for f in failures if f[0] == "5xx")
    summary = {"endpoints": len(endpoints), "requests": sum(tried.values()), "by_status": dict(statuses),
               "five_xx": fives, "failures": len(failures), "seconds": round(elapsed, 1)}
    print("fuzz:", summary)
    if os.environ.get("STAGEGATE_FUZZ_REPORT"):
        Path(os.environ["STAGEGATE_FUZZ_REPORT"]).write_text(json.dumps(
            {**summary, "examples": [repr(f) for f in failures]}, indent=1, default=str))
    assert not failures, f"{len(failures)} bad answers ({fives} 5xx); first ones:\n" + "\n".join(repr(f) for f in failures[:15])
