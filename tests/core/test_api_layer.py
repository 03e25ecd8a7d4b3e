"""The shared API layer: authentication, parameter errors, Content-Type rule, paging tokens."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from core import api
from core.errors import InvalidParameter
from core.services import create_api_token, revoke_api_token
from tests import factories
from tests.conftest import basic_header


@api.api_view(("GET", "POST", "DELETE"))
def echo(request, params):
    return {
        "user": request.user.username,
        "name": params.string("name", required=True),
        "n": params.integer("n", default=0),
        "flag": params.boolean("flag"),
        "stages": params.string_list("stages"),
    }


def call(method="GET", data=None, *, auth=None, content_type="application/json", raw_body=None, session_user=None):
    factory = RequestFactory()
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    if method == "GET":
        request = factory.get("/api/2.0/mlflow/echo", data or {}, **headers)
    else:
        body = raw_body if raw_body is not None else json.dumps(data or {})
        request = factory.generic(method, "/api/2.0/mlflow/echo", body, content_type=content_type, **headers)
        if content_type is None:
            request.META.pop("CONTENT_TYPE", None)
    request.user = session_user or AnonymousUser()
    response = echo(request)
    return response.status_code, json.loads(response.content)


@pytest.fixture
def token(owner):
    return create_api_token(user=owner, name="t")[1]


def test_missing_credentials_is_401_json(db):
    status, body = call(data={"name": "x"})
    assert status == 401
    assert body["error_code"] == "UNAUTHENTICATED"


def test_bearer_token_authenticates_and_records_use(owner, token):
    status, body = call(data={"name": "x"}, auth=f"Bearer {token}")
    assert (status, body["user"]) == (200, "owner")
    assert owner.api_tokens.get().last_used_at is not None


def test_revoked_or_unknown_token_is_refused(owner, token):
    revoke_api_token(user=owner, token_id=owner.api_tokens.get().pk)
    assert call(data={"name": "x"}, auth=f"Bearer {token}")[0] == 401
    assert call(data={"name": "x"}, auth="Bearer sg_nope")[0] == 401


def test_tokens_are_stored_hashed(owner, token):
    row = owner.api_tokens.get()
    assert token not in (row.token_hash, row.prefix)
    assert row.token_hash == api.hash_token(token)


def test_basic_auth_verifies_the_hash_once_then_trusts_the_cache(owner, django_assert_max_num_queries, monkeypatch):
    checks = []
    original = get_user_model().check_password
    monkeypatch.setattr(get_user_model(), "check_password", lambda self, raw: checks.append(1) or original(self, raw))
    for _ in range(5):
        status, body = call(data={"name": "x"}, auth=basic_header("owner"))
        assert (status, body["user"]) == (200, "owner")
    assert len(checks) == 1


def test_basic_auth_cache_does_not_survive_a_password_change(owner):
    assert call(data={"name": "x"}, auth=basic_header("owner"))[0] == 200
    owner.set_password("a new password 123")
    owner.save()
    assert call(data={"name": "x"}, auth=basic_header("owner"))[0] == 401
    assert call(data={"name": "x"}, auth=basic_header("owner", "a new password 123"))[0] == 200


def test_wrong_password_and_disabled_user_are_refused(owner):
    assert call(data={"name": "x"}, auth=basic_header("owner", "wrong"))[0] == 401
    owner.is_active = False
    owner.save()
    assert call(data={"name": "x"}, auth=basic_header("owner"))[0] == 401


def test_session_reads_but_does_not_write(owner):
    assert call(data={"name": "x"}, session_user=owner)[0] == 200
    assert call("POST", {"name": "x"}, session_user=owner)[0] == 401


def test_exact_mlflow_parameter_errors(token):
    auth = f"Bearer {token}"
    status, body = call("POST", {}, auth=auth)
    assert status == 400
    assert body == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "Missing value for required parameter 'name'. See the API docs for more information about request parameters.",
    }
    status, body = call("POST", {"name": 123}, auth=auth)
    assert body["message"].startswith("Invalid value 123 for parameter 'name' supplied:  Hint: Value was of type 'int'.")
    # A body that is not JSON is refused (MLflow reads it as {}; a garbled request must create nothing).
    status, body = call("POST", auth=auth, raw_body="{not json")
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert body["message"].startswith("Malformed JSON request body: Expecting property name")
    status, body = call("GET", {"name": "x", "n": "abc"}, auth=auth)
    assert status == 400 and 'Invalid value "abc" for parameter \'n\'' in body["message"]


def test_content_type_rule_on_post(token):
    auth = f"Bearer {token}"
    status, body = call("POST", {"name": "x"}, auth=auth, content_type=None)
    assert (status, body["message"]) == (400, "Bad Request. Content-Type header is missing.")
    status, body = call("POST", {"name": "x"}, auth=auth, content_type="text/plain")
    assert body["message"] == "Bad Request. Content-Type must be one of ['application/json']."
    assert call("POST", {"name": "x"}, auth=auth, content_type="application/json; charset=utf-8")[0] == 200


def test_delete_reads_json_body_and_get_reads_repeated_keys(token):
    auth = f"Bearer {token}"
    status, body = call("DELETE", {"name": "x", "flag": True}, auth=auth)
    assert (status, body["flag"]) == (200, True)
    status, body = call("GET", {"name": "x", "stages": ["Staging", "Archived"]}, auth=auth)
    assert body["stages"] == ["Staging", "Archived"]


def test_wrong_method_is_json_405(token):
    request = RequestFactory().put("/api/2.0/mlflow/echo", HTTP_AUTHORIZATION=f"Bearer {token}")
    request.user = AnonymousUser()
    response = echo(request)
    assert response.status_code == 405
    assert json.loads(response.content)["error_code"] == "BAD_REQUEST"


def test_page_tokens_round_trip_and_reject_garbage():
    token = api.encode_page_token({"kind": "x", "after": [1, "a"]})
    assert api.decode_page_token(token) == {"kind": "x", "after": [1, "a"]}
    with pytest.raises(InvalidParameter, match="Invalid page token"):
        api.decode_page_token("not-a-token!!")


@pytest.mark.django_db
def test_keyset_page_walks_every_row_once():
    users = [factories.user(f"user{i:02d}") for i in range(23)]
    qs = get_user_model().objects.all()
    seen, page_token = [], None
    while True:
        rows, page_token = api.keyset_page(
            qs, order=[("username", True), ("id", False)], max_results=5, page_token=page_token, kind="users"
        )
        seen += [u.username for u in rows]
        if not page_token:
            break
    assert seen == sorted((u.username for u in users), reverse=True)
    with pytest.raises(InvalidParameter):
        api.keyset_page(qs, order=[("id", False)], max_results=5, page_token=api.encode_page_token({"kind": "other", "after": [1]}), kind="users")


def test_json_response_writes_what_djangos_encoder_writes():
    import datetime
    import decimal

    from django.core.serializers.json import DjangoJSONEncoder
    from django.utils.functional import lazy

    data = {
        "when": datetime.datetime(2026, 11, 27, 1, 2, 3, 456789, tzinfo=datetime.UTC),
        "day": datetime.date(2026, 11, 27),
        "price": decimal.Decimal("1.10"),
        "label": lazy(lambda: "lazy text", str)(),
        "text": "naïve ✓ \"quoted\"",
        "numbers": [1, 2.5, 1e-05, -0.0, 10**18],
        "nested": {"empty": [], "none": None, "flag": True},
    }
    response = api.json_response(data, status=201)
    assert response.status_code == 201 and response["Content-Type"] == "application/json"
    assert json.loads(response.content) == json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    assert json.loads(response.content)["when"] == "2026-11-27T01:02:03.456Z"


def test_error_and_method_responses_are_mlflow_json():
    status, body = call("PUT", {"name": "x"})
    assert status == 405 and body["error_code"] == "BAD_REQUEST"
    status, body = call("GET", {})
    assert status == 401 and body["error_code"] == "UNAUTHENTICATED"
