"""OpenSSF model signatures (the `model-signing` package's Sigstore bundle, `model.sig` in the
version's folder), verified against the signers admins trust (approvals.models.SigningIdentity).

- key: the bundle names no key, so each trusted public key is tried; the one that verifies is the signer;
- certificate: each trusted CA chain is tried; the signer is the leaf certificate's identity
  (its SAN e-mail/URI, else its subject CN), shown as "<trusted chain name>: <identity>";
- keyless Sigstore: verified only with a local trust root (STAGEGATE_SIGSTORE_TRUST_CONFIG, a
  Sigstore ClientTrustConfig JSON): without it the verifier fetches Sigstore's TUF root over the
  network, which the server never does here, and the result is UNVERIFIABLE.
Verification hashes the files; it never loads the model, so it runs in the worker itself.
"""

import base64
import json
import logging
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import transaction

from approvals.models import SigningIdentity, VersionSignature
from core import artifacts
from registry.events import record_event
from tracking.models import now_ms

log = logging.getLogger("stagegate.approvals.signing")


def signature_file() -> str:
    return getattr(settings, "STAGEGATE_MODEL_SIGNATURE_FILE", "model.sig")


def _leaf_identity(bundle: dict) -> str:
    """The identity in the bundle's leaf certificate: SAN e-mail or URI, else the subject CN."""
    from cryptography import x509

    material = bundle.get("verificationMaterial") or {}
    raw = (material.get("certificate") or {}).get("rawBytes")
    if raw is None:
        chain = (material.get("x509CertificateChain") or {}).get("certificates") or []
        raw = chain[0].get("rawBytes") if chain else None
    if raw is None:
        return ""
    cert = x509.load_der_x509_certificate(base64.b64decode(raw))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.RFC822Name) + san.get_values_for_type(x509.UniformResourceIdentifier)
        if names:
            return names[0]
    except x509.ExtensionNotFound:
        pass
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return cn[0].value if cn else cert.subject.rfc4514_string()


def _kind(bundle: dict) -> str:
    material = bundle.get("verificationMaterial") or {}
    if "publicKey" in material:
        return SigningIdentity.KEY
    if material.get("tlogEntries"):
        return SigningIdentity.SIGSTORE  # a Fulcio certificate logged in Rekor: keyless
    return SigningIdentity.CERTIFICATE


def verify_folder(model_dir: str, signature_path: str) -> dict:
    """Verify the bundle at `signature_path` over `model_dir` against every enabled trusted signer.
    Returns {"status", "signer", "method", "detail"}."""
    from model_signing import hashing, verifying

    try:
        bundle = json.loads(Path(signature_path).read_text())
    except (OSError, ValueError) as exc:
        return {"status": VersionSignature.INVALID, "signer": "", "method": "", "detail": f"unreadable signature bundle: {exc}"}
    kind = _kind(bundle)
    candidates = list(SigningIdentity.objects.filter(enabled=True, kind=kind))
    if kind == SigningIdentity.SIGSTORE and not getattr(settings, "STAGEGATE_SIGSTORE_TRUST_CONFIG", ""):
        return {"status": VersionSignature.UNVERIFIABLE, "signer": _leaf_identity(bundle), "method": kind,
                "detail": "keyless Sigstore signature: verifying it needs Sigstore's trust root, fetched over the network "
                          "unless STAGEGATE_SIGSTORE_TRUST_CONFIG names a local one"}
    if not candidates:
        return {"status": VersionSignature.UNVERIFIABLE, "signer": "", "method": kind,
                "detail": f"signed with a {kind}, but no trusted {kind} is configured"}
    ignored = hashing.Config().set_ignored_paths(paths=[signature_path], ignore_git_paths=True)
    errors = []
    with tempfile.TemporaryDirectory(prefix="sg-sign-") as tmp:
        for identity in candidates:
            config = verifying.Config().set_hashing_config(ignored)
            try:
                if kind == SigningIdentity.KEY:
                    key = Path(tmp, f"key-{identity.pk}.pem")
                    key.write_text(identity.pem)
                    config.use_elliptic_key_verifier(public_key=key)
                elif kind == SigningIdentity.CERTIFICATE:
                    chain = Path(tmp, f"chain-{identity.pk}.pem")
                    chain.write_text(identity.pem)
                    config.use_certificate_verifier(certificate_chain=[chain])
                else:
                    config.use_sigstore_verifier(identity=identity.identity, oidc_issuer=identity.oidc_issuer,
                                                 trust_config=Path(settings.STAGEGATE_SIGSTORE_TRUST_CONFIG))
                config.verify(model_dir, signature_path)
            except Exception as exc:  # a mismatch or a wrong key: try the next trusted signer
                errors.append(f"{identity.name}: {exc}")
                continue
            signer = identity.name
            if kind == SigningIdentity.CERTIFICATE:
                signer = f"{identity.name}: {_leaf_identity(bundle)}"
            elif kind == SigningIdentity.SIGSTORE:
                signer = identity.identity
            return {"status": VersionSignature.VERIFIED, "signer": signer, "method": kind,
                    "detail": f"verified with the trusted {kind} {identity.name!r}"}
    detail = "no trusted signer verifies it: " + " | ".join(errors)
    return {"status": VersionSignature.INVALID, "signer": "", "method": kind, "detail": detail[:4000]}


def verify_model_version_signature(*, version, model_dir: str | None = None, checksum: str = "") -> VersionSignature:
    """Verify the READY version's signature file (UNSIGNED when it has none) and record the result
    on the version (one row per version, replaced). `model_dir` is a local copy of the version's
    files when the caller has one; otherwise they are downloaded to a temporary folder."""
    name = signature_file()
    sig_artifact = artifacts.join(version.storage_path, name)
    if not version.storage_path or not artifacts.is_file(sig_artifact):
        result = {"status": VersionSignature.UNSIGNED, "signer": "", "method": "", "detail": f"no {name} in the version's folder"}
    elif model_dir is not None:
        result = verify_folder(model_dir, os.path.join(model_dir, name))
    else:
        with tempfile.TemporaryDirectory(prefix="sg-sign-") as tmp:
            copied = artifacts.download_tree(version.storage_path, tmp)
            checksum = copied["checksum"]
            result = verify_folder(tmp, os.path.join(tmp, name))
    with transaction.atomic():
        row, _ = VersionSignature.objects.update_or_create(
            version=version, defaults={**result, "checksum": checksum or version.checksum, "verified_timestamp": now_ms()},
        )
        if result["status"] != VersionSignature.UNSIGNED:
            record_event(type="model_signature.verified", model=version.registered_model, version=version.version,
                         payload={"status": row.status, "signer": row.signer, "method": row.method, "detail": row.detail})
    return row
