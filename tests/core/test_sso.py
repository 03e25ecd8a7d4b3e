"""Single sign-on with OpenID Connect against a real provider on loopback (oidc-provider-mock).

Most tests drive Stagegate with Django's test client and the provider over real HTTP: the
authorization redirect, the provider's form, the callback whose code Stagegate exchanges at the
provider's token endpoint (ID token verified with its JWKS). One test runs it all over plain HTTP
against live_server and hands the token it creates to the real mlflow client.
"""

import base64
import hashlib
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from core import oidc
from core.models import SsoIdentity
from registry import services as registry
from tests import factories

pytestmark = pytest.mark.django_db


def authorize(authorize_url: str, sub: str) -> str:
    """Submit the provider's authorization form as `sub`; returns the callback URL it redirects to."""
    form = requests.get(authorize_url, timeout=10)
    assert form.status_code == 200 and 'name="sub"' in form.text, form.text[:400]
    answer = requests.post(authorize_url, data={"sub": sub}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:400]
    return answer.headers["Location"]


def sso_sign_in(client, provider, sub: str, *, next: str = ""):
    """The whole flow with the Django test client; returns the callback's response."""
    start = client.get("/login/sso/" + (f"?{urlencode({'next': next})}" if next else ""))
    assert start.status_code == 302, start.content[:400]
    assert start["Location"].startswith(provider.issuer + "/oauth2/authorize?")
    callback = urlsplit(authorize(start["Location"], sub))
    assert callback.path == "/login/sso/callback/"
    return client.get(f"{callback.path}?{callback.query}")


def signed_in_as(client) -> str | None:
    response = client.get("/settings/tokens/")
    if response.status_code != 200:
        return None
    return re.search(r"Signed in as <strong>([^<]+)</strong>", response.content.decode()).group(1)


def page_messages(client) -> str:
    return client.get("/login/").content.decode()


# --------------------------------------------------------------------------- off by default


def test_off_without_an_issuer(client, settings):
    assert not settings.STAGEGATE_OIDC_ISSUER
    html = client.get("/login/").content.decode()
    assert "/login/sso/" not in html and 'name="password"' in html
    assert client.get("/login/sso/").status_code == 404
    assert client.get("/login/sso/callback/?code=x&state=y").status_code == 404


def test_settings_fail_loudly_on_a_half_configuration():
    import os
    import subprocess
    import sys

    env = {**os.environ, "STAGEGATE_OIDC_ISSUER": "https://idp.example", "STAGEGATE_OIDC_CLIENT_ID": ""}
    result = subprocess.run([sys.executable, "-c", "import config.settings"], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "STAGEGATE_OIDC_CLIENT_ID" in result.stderr


# --------------------------------------------------------------------------- the sign-in page


def test_sign_in_page_offers_the_provider(client, sso):
    html = client.get("/login/?next=/models/").content.decode()
    assert 'href="/login/sso/?next=/models/"' in html and "Sign in with Acme SSO" in html
    assert 'name="password"' in html  # the password form stays unless STAGEGATE_OIDC_ONLY


def test_sso_only_hides_and_refuses_the_password_form_but_not_admin_login(client, sso, settings, admin, owner):
    settings.STAGEGATE_OIDC_ONLY = True
    html = client.get("/login/").content.decode()
    assert "Sign in with Acme SSO" in html and 'name="password"' not in html
    assert 'href="/admin/login/?next=/"' in html
    refused = client.post("/login/", {"username": "owner", "password": factories.PASSWORD})
    assert refused.status_code == 403 and "Password sign-in is turned off" in refused.content.decode()
    assert signed_in_as(client) is None
    # Django admin's own password sign-in keeps working, for when the provider is down.
    response = client.post("/admin/login/?next=/", {"username": "admin", "password": factories.PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    assert signed_in_as(client) == "admin"


def test_start_redirects_with_state_nonce_and_pkce(client, sso):
    response = client.get("/login/sso/?next=/models/")
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["client_id"] == ["stagegate"] and query["response_type"] == ["code"]
    assert query["scope"] == ["openid email profile"]
    assert query["redirect_uri"] == ["http://testserver/login/sso/callback/"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    state, nonce = query["state"][0], query["nonce"][0]
    stored = client.session["oidc_states"][state]
    assert stored["nonce"] == nonce and len(stored["code_verifier"]) == 64
    digest = hashlib.sha256(stored["code_verifier"].encode()).digest()
    assert query["code_challenge"] == [base64.urlsafe_b64encode(digest).rstrip(b"=").decode()]


def test_the_code_is_redeemed_with_the_pkce_verifier(client, sso, monkeypatch):
    sso.put_user("sub-pk", preferred_username="pk")
    sent = []
    real_get_token = oidc.OidcBackend.get_token

    def get_token(self, payload):
        sent.append(dict(payload))
        return real_get_token(self, payload)

    monkeypatch.setattr(oidc.OidcBackend, "get_token", get_token)
    start = client.get("/login/sso/")
    verifier = next(iter(client.session["oidc_states"].values()))["code_verifier"]
    callback = urlsplit(authorize(start["Location"], "sub-pk"))
    client.get(f"{callback.path}?{callback.query}")
    assert signed_in_as(client) == "pk"
    assert sent[0]["code_verifier"] == verifier and sent[0]["grant_type"] == "authorization_code"
    assert sent[0]["client_id"] == "stagegate" and sent[0]["redirect_uri"] == "http://testserver/login/sso/callback/"


def test_unreachable_provider_says_so(client, sso, settings):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.STAGEGATE_OIDC_ISSUER = f"http://127.0.0.1:{port}"
    oidc.forget_provider()
    response = client.get("/login/sso/", follow=True)
    html = response.content.decode()
    assert response.redirect_chain == [("/login/", 302)]
    assert "Acme SSO sign-in failed: the identity provider cannot be reached" in html
    assert f"http://127.0.0.1:{port}/.well-known/openid-configuration" in html


def test_a_discovery_document_of_another_issuer_is_refused(client, sso, monkeypatch):
    real_get = requests.get

    def elsewhere(url, **kwargs):
        response = real_get(url, **kwargs)
        response._content = response.content.replace(sso.issuer.encode(), b"https://elsewhere.example")
        return response

    monkeypatch.setattr(oidc.requests, "get", elsewhere)
    html = client.get("/login/sso/", follow=True).content.decode()
    assert "describes the issuer" in html and "check STAGEGATE_OIDC_ISSUER" in html


# --------------------------------------------------------------------------- users and groups


def test_first_sign_in_creates_the_user(client, sso):
    sso.put_user("sub-ana", preferred_username="ana", email="ana@example.com", given_name="Ana", family_name="Lima")
    response = sso_sign_in(client, sso, "sub-ana", next="/experiments/")
    assert response.status_code == 302 and response["Location"] == "/experiments/"
    assert signed_in_as(client) == "ana"
    user = get_user_model().objects.get(username="ana")
    assert (user.email, user.first_name, user.last_name) == ("ana@example.com", "Ana", "Lima")
    assert not user.has_usable_password() and not user.is_staff
    identity = SsoIdentity.objects.get(user=user)
    assert (identity.issuer, identity.subject) == (sso.issuer, "sub-ana")

    # The next sign-in finds the same user by subject, even under a changed name at the provider.
    sso.put_user("sub-ana", preferred_username="ana.lima", email="ana.lima@example.com")
    sso_sign_in(Client(), sso, "sub-ana")
    assert get_user_model().objects.filter(username__startswith="ana").count() == 1
    user.refresh_from_db()
    assert user.email == "ana.lima@example.com"


def test_username_falls_back_to_the_email(client, sso, settings):
    sso.put_user("sub-bo", email="bo@example.com")
    sso_sign_in(client, sso, "sub-bo")
    assert signed_in_as(client) == "bo@example.com"

    settings.STAGEGATE_OIDC_USERNAME_CLAIM = "upn"
    sso.put_user("sub-cy", upn="cy@corp", email="cy@example.com")
    sso_sign_in(Client(), sso, "sub-cy")
    assert get_user_model().objects.filter(username="cy@corp").exists()


def test_no_name_at_all_is_refused(client, sso):
    sso.put_user("sub-nameless", nickname="x")
    response = sso_sign_in(client, sso, "sub-nameless")
    assert response["Location"] == "/login/"
    assert "sent neither a &#x27;preferred_username&#x27; nor an &#x27;email&#x27;" in page_messages(client)
    assert signed_in_as(client) is None


def test_group_grants_follow_the_provider(client, sso, owner):
    model = registry.create_registered_model(name="churn", user=owner)
    factories.grant(model, "CAN_READ", group="ml-team")
    sso.put_user("sub-dee", preferred_username="dee", groups=["ml-team", "readers"])
    sso_sign_in(client, sso, "sub-dee")
    dee = get_user_model().objects.get(username="dee")
    assert sorted(dee.groups.values_list("name", flat=True)) == ["ml-team", "readers"]
    assert Group.objects.filter(name="readers").exists()  # created at sign-in
    assert client.get("/models/churn/").status_code == 200
    assert client.get("/api/2.0/mlflow/registered-models/get", {"name": "churn"}).status_code == 200

    # Removed from the group at the provider: no access after the next sign-in.
    sso.put_user("sub-dee", preferred_username="dee", groups=["readers"])
    again = Client()
    sso_sign_in(again, sso, "sub-dee")
    assert list(dee.groups.values_list("name", flat=True)) == ["readers"]
    assert again.get("/models/churn/").status_code == 404
    assert again.get("/api/2.0/mlflow/registered-models/get", {"name": "churn"}).json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    # Added back (and without a groups claim at all: no groups).
    sso.put_user("sub-dee", preferred_username="dee", groups="ml-team")
    sso_sign_in(Client(), sso, "sub-dee")
    assert list(dee.groups.values_list("name", flat=True)) == ["ml-team"]
    sso.put_user("sub-dee", preferred_username="dee")
    sso_sign_in(Client(), sso, "sub-dee")
    assert not dee.groups.exists()


def test_groups_claim_setting(client, sso, settings):
    settings.STAGEGATE_OIDC_GROUPS_CLAIM = "roles"
    sso.put_user("sub-eve", preferred_username="eve", roles=["approvers"], groups=["ignored"])
    sso_sign_in(client, sso, "sub-eve")
    eve = get_user_model().objects.get(username="eve")
    assert list(eve.groups.values_list("name", flat=True)) == ["approvers"]

    # Empty: groups are Stagegate's to manage; sign-ins leave them alone.
    settings.STAGEGATE_OIDC_GROUPS_CLAIM = ""
    eve.groups.add(Group.objects.create(name="local"))
    sso_sign_in(Client(), sso, "sub-eve")
    assert sorted(eve.groups.values_list("name", flat=True)) == ["approvers", "local"]


def test_a_local_account_of_that_name_is_not_taken_over(client, sso, owner, admin, settings):
    sso.put_user("sub-owner", preferred_username="owner")
    response = sso_sign_in(client, sso, "sub-owner")
    assert response["Location"] == "/login/"
    assert "An account named &#x27;owner&#x27; already exists" in page_messages(client)
    assert signed_in_as(client) is None and not SsoIdentity.objects.exists()

    # STAGEGATE_OIDC_LINK_EXISTING links it (keeping its password), but never a superuser.
    settings.STAGEGATE_OIDC_LINK_EXISTING = True
    sso_sign_in(client, sso, "sub-owner")
    assert signed_in_as(client) == "owner"
    assert SsoIdentity.objects.get(subject="sub-owner").user == owner
    owner.refresh_from_db()
    assert owner.check_password(factories.PASSWORD)
    sso.put_user("sub-admin", preferred_username="admin")
    other = Client()
    sso_sign_in(other, sso, "sub-admin")
    assert signed_in_as(other) is None


def test_a_disabled_user_is_refused(client, sso):
    sso.put_user("sub-fay", preferred_username="fay")
    sso_sign_in(client, sso, "sub-fay")
    get_user_model().objects.filter(username="fay").update(is_active=False)
    assert signed_in_as(client) is None  # the open session stops too
    again = Client()
    sso_sign_in(again, sso, "sub-fay")
    assert "The account &#x27;fay&#x27; is disabled" in page_messages(again)


# --------------------------------------------------------------------------- the protocol's checks


def test_next_goes_only_to_local_urls(client, sso):
    sso.put_user("sub-gus", preferred_username="gus")
    for target in ("https://evil.example/", "//evil.example/x", "http://evil.example"):
        response = sso_sign_in(Client(), sso, "sub-gus", next=target)
        assert response.status_code == 302 and response["Location"] == "/", target
    assert sso_sign_in(client, sso, "sub-gus", next="/models/?q=a")["Location"] == "/models/?q=a"


def test_a_forged_or_replayed_callback_signs_nobody_in(client, sso):
    sso.put_user("sub-hal", preferred_username="hal")
    start = client.get("/login/sso/")
    callback = urlsplit(authorize(start["Location"], "sub-hal"))
    query = parse_qs(callback.query)
    # Another state than the one this browser was given.
    response = client.get("/login/sso/callback/", {"code": query["code"][0], "state": "forged"})
    assert response["Location"] == "/login/"
    assert "could not be verified" in page_messages(client)
    assert signed_in_as(client) is None
    # The real answer works once; the same answer again is refused (state used up, code spent).
    assert client.get(f"{callback.path}?{callback.query}")["Location"] == "/"
    assert signed_in_as(client) == "hal"
    fresh = Client()
    fresh.get("/login/sso/")
    assert fresh.get(f"{callback.path}?{callback.query}")["Location"] == "/login/"
    assert signed_in_as(fresh) is None


def test_the_id_token_must_be_for_this_client(client, sso, monkeypatch):
    """The provider signs tokens for any client id: a token minted for another client is refused."""
    sso.put_user("sub-ida", preferred_username="ida")
    start = client.get("/login/sso/")
    location = start["Location"].replace("client_id=stagegate", "client_id=another-app")
    callback = urlsplit(authorize(location, "sub-ida"))
    monkeypatch.setattr(
        oidc.OidcBackend, "OIDC_RP_CLIENT_ID", property(lambda self: "another-app"), raising=False
    )  # the code is redeemed as the other client, so the provider hands over that client's ID token
    response = client.get(f"{callback.path}?{callback.query}")
    assert response["Location"] == "/login/"
    assert signed_in_as(client) is None


def test_a_tampered_id_token_signature_is_refused(client, sso, monkeypatch):
    sso.put_user("sub-jo", preferred_username="jo")
    real_get_token = oidc.OidcBackend.get_token

    def tampered(self, payload):
        tokens = real_get_token(self, payload)
        header, body, signature = tokens["id_token"].split(".")
        tokens["id_token"] = ".".join([header, body, signature[:-6] + ("AAAAAA" if signature[-6:] != "AAAAAA" else "BBBBBB")])
        return tokens

    monkeypatch.setattr(oidc.OidcBackend, "get_token", tampered)
    response = sso_sign_in(client, sso, "sub-jo")
    assert response["Location"] == "/login/"
    assert signed_in_as(client) is None
    assert not get_user_model().objects.filter(username="jo").exists()


def test_the_provider_denying_shows_why(client, sso):
    start = client.get("/login/sso/")
    answer = requests.post(start["Location"], data={"action": "deny"}, allow_redirects=False, timeout=10)
    callback = urlsplit(answer.headers["Location"])
    response = client.get(f"{callback.path}?{callback.query}")
    assert response["Location"] == "/login/"
    assert "the identity provider answered" in page_messages(client)


def test_password_and_api_sign_ins_never_reach_the_provider(client, sso, owner, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the provider was called")

    monkeypatch.setattr(oidc, "provider", no_network)
    response = client.post("/login/", {"username": "owner", "password": factories.PASSWORD})
    assert response.status_code == 302 and signed_in_as(client) == "owner"
    assert Client().get("/api/2.0/mlflow/experiments/search", {"max_results": 1}, HTTP_AUTHORIZATION="Basic b3duZXI6eA==").status_code == 401


# --------------------------------------------------------------------------- sign-out


def test_sign_out_ends_the_provider_session_too(client, sso):
    sso.put_user("sub-kim", preferred_username="kim")
    sso_sign_in(client, sso, "sub-kim")
    id_token = client.session["oidc_id_token"]
    response = client.post("/logout/")
    assert signed_in_as(client) is None
    target = urlsplit(response["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == sso.issuer + "/oauth2/end_session"
    query = parse_qs(target.query)
    assert query == {"id_token_hint": [id_token], "client_id": ["stagegate"], "post_logout_redirect_uri": ["http://testserver/login/"]}
    # The provider ends its session and sends the browser back to the sign-in page.
    page = requests.get(response["Location"], timeout=10)
    assert page.status_code == 200 and "End session" in page.text
    back = requests.post(sso.issuer + "/oauth2/end_session/confirm", data={"redirect_uri": query["post_logout_redirect_uri"][0]}, allow_redirects=False, timeout=10)
    assert back.headers["Location"] == "http://testserver/login/"


def test_password_users_sign_out_locally(client, sso, owner):
    client.force_login(owner)
    response = client.post("/logout/")
    assert response["Location"] == "/login/"


def test_no_end_session_endpoint_means_local_sign_out(client, sso, monkeypatch):
    sso.put_user("sub-lee", preferred_username="lee")
    sso_sign_in(client, sso, "sub-lee")
    document = dict(oidc.provider())
    del document["end_session_endpoint"]
    monkeypatch.setattr(oidc, "provider", lambda: document)
    response = client.post("/logout/")
    assert response["Location"] == "/login/" and signed_in_as(client) is None


# --------------------------------------------------------------------------- plain HTTP and the mlflow client


@pytest.mark.client
@pytest.mark.django_db(transaction=True)
def test_plain_http_sign_in_then_a_token_for_the_mlflow_client(live_server, sso, owner, monkeypatch, request):
    import mlflow

    model = registry.create_registered_model(name="fraud", user=owner)
    factories.grant(model, "CAN_READ", group="risk")
    sso.put_user("sub-max", preferred_username="max", email="max@example.com", groups=["risk"])

    browser = requests.Session()
    request.addfinalizer(browser.close)  # a kept-alive connection would keep the live server's DB connection open
    form = browser.get(f"{live_server.url}/settings/tokens/", timeout=10)  # -> /login/ -> no SSO yet
    assert urlsplit(form.url).path == "/login/" and "Sign in with Acme SSO" in form.text
    sso_link = re.search(r'href="(/login/sso/[^"]*)"', form.text).group(1).replace("&amp;", "&")
    authorization = browser.get(live_server.url + sso_link, timeout=10)
    assert authorization.url.startswith(sso.issuer + "/oauth2/authorize") and "Authorize" in authorization.text
    landed = browser.post(authorization.url, data={"sub": "sub-max"}, timeout=10)
    assert landed.status_code == 200 and landed.url == f"{live_server.url}/settings/tokens/"
    assert "Signed in as <strong>max</strong>" in landed.text

    created = browser.post(
        f"{live_server.url}/settings/tokens/",
        data={"name": "laptop", "expires_days": "", "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
        timeout=10,
    )
    token = re.search(r'id="new-token" class="mono" readonly value="([^"]+)"', created.text).group(1)

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    client = mlflow.MlflowClient(tracking_uri=live_server.url, registry_uri=live_server.url)
    assert client.get_registered_model("fraud").name == "fraud"  # through the group's grant
    experiment_id = client.create_experiment("max-sso-experiment")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "auc", 0.91)
    assert client.get_run(run.info.run_id).data.metrics == {"auc": 0.91}
    assert client.get_experiment(experiment_id).name == "max-sso-experiment"
