"""Secrets at rest (Fernet), signatures of both flavors, and the outbound-target (SSRF) guard."""

import base64
import hashlib
import hmac
import ipaddress
import socket
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from core.errors import InvalidParameter


def _fernet() -> Fernet:
    material = getattr(settings, "STAGEGATE_WEBHOOK_SECRET_KEY", "") or settings.SECRET_KEY
    key = base64.urlsafe_b64encode(hashlib.sha256(("stagegate-webhook-secret:" + material).encode()).digest())
    return Fernet(key)


def encrypt(value: str | None) -> str:
    return _fernet().encrypt(value.encode()).decode() if value else ""


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        # The key changed: fail the signature rather than send an unsigned request.
        raise RuntimeError("webhook secret cannot be decrypted: STAGEGATE_WEBHOOK_SECRET_KEY/SECRET_KEY changed") from None


def mlflow_signature(secret: str, delivery_id: str, timestamp: str, body: str) -> str:
    """Standard Webhooks: `v1,` + base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))."""
    digest = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def databricks_signature(secret: str, body: str) -> str:
    """Databricks: hex HMAC-SHA256(secret, raw body)."""
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- SSRF guard


def _allowed():
    hosts, networks = set(), []
    for item in getattr(settings, "STAGEGATE_WEBHOOK_ALLOWED_HOSTS", []) or []:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            hosts.add(item.lower().rstrip("."))
    return hosts, networks


def _public(ip) -> bool:
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def check_url(url: str, *, resolve: bool = True) -> None:
    """Refuse non-http(s) URLs and targets that resolve to private, loopback, link-local or other
    non-global addresses, unless the host or its address is in STAGEGATE_WEBHOOK_ALLOWED_HOSTS.
    Raises InvalidParameter with the reason."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidParameter(f"Webhook URL cannot be empty or just whitespace: {url!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidParameter(f"Invalid webhook URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidParameter(f"Invalid webhook URL scheme: {parts.scheme!r}. Allowed schemes are: http, https.")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise InvalidParameter(f"Webhook URL must include a hostname: {url!r}")
    hosts, networks = _allowed()
    if host in hosts:
        return
    if not resolve:
        return
    try:
        infos = socket.getaddrinfo(host, port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidParameter(f"Webhook URL host {host!r} does not resolve: {exc}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if any(ip in net for net in networks):
            continue
        if not _public(ip):
            raise InvalidParameter(
                f"Webhook URL {url!r} resolves to {ip}, a private, loopback or link-local address. "
                "Add the host or network to STAGEGATE_WEBHOOK_ALLOWED_HOSTS to allow it."
            )
