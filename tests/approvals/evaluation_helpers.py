"""Model folders and datasets for the evaluation tests: the tutorial's wine models, a hold-out set,
and hostile pickles (a hang, a socket, a write outside the scratch folder)."""

import io
import json
import pickle
import uuid

import yaml

from approvals.demo import holdout_csv  # noqa: F401  (the tests' hold-out set is the demo's)
from core import artifacts
from registry.demo import FEATURE_SETS, _train, mlmodel_files


def write_files(files: dict[str, bytes]) -> str:
    """Save a model folder in the artifact store (the shared Default experiment's folder, which every
    persona may read); returns its mlflow-artifacts: source URI."""
    from tests.registry.conftest import ensure_experiment

    ensure_experiment()
    base = f"0/{uuid.uuid4().hex}/artifacts/model"
    for name, data in files.items():
        artifacts.save_stream(artifacts.join(base, name), io.BytesIO(data))
    return "mlflow-artifacts:/" + base


def wine_files(features_index: int) -> tuple[dict[str, bytes], float]:
    """The tutorial's model on FEATURE_SETS[i] (0: alcohol, 1: + volatile acidity and sulphates, 2: all eleven
    measurements), and its rmse on the hold-out quarter."""
    features = FEATURE_SETS[features_index]
    model, curve, example = _train(features)
    rmse = curve[-1][1]
    return mlmodel_files(model, features=features, run_id=uuid.uuid4().hex, artifact_path="model", input_example=example), rmse


class _Exec:
    """Unpickling it runs `code` (what a hostile model.pkl does)."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def hostile_files(code: str) -> dict[str, bytes]:
    """A wine model folder whose model.pkl runs `code` when loaded, then loads as the real model."""
    files, _ = wine_files(1)
    real = pickle.loads(files["model.pkl"])
    # The pickle runs the code, then evaluates to the real estimator: a "model" that works.
    files["model.pkl"] = pickle.dumps(_Then(code, real))
    return files


class _Then:
    """Unpickles as `real`, after running `code`: getitem((exec(code), real), 1)."""

    def __init__(self, code, real):
        self.code, self.real = code, real

    def __reduce__(self):
        import operator

        return (operator.getitem, ((_Exec(self.code), self.real), 1))


def mlmodel_of(files: dict[str, bytes]) -> dict:
    return yaml.safe_load(files["MLmodel"])


def dumps_json(value) -> bytes:
    return json.dumps(value).encode()


def key_pair(folder) -> tuple[str, str]:
    """A fresh P-256 key pair as (private key file, public key PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private = folder / "signing-key.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return str(private), public.decode()


def signed_files(folder, files: dict[str, bytes], private_key: str, *, change_after_signing: str | None = None) -> dict[str, bytes]:
    """`files` with an OpenSSF model signature (model.sig) as `model_signing` writes it; with
    `change_after_signing`, one byte of that file is changed after the signature was made."""
    from model_signing import signing

    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    signing.Config().use_elliptic_key_signer(private_key=private_key).sign(folder, folder / "model.sig")
    if change_after_signing:
        data = bytearray((folder / change_after_signing).read_bytes())
        data[-2] ^= 0x01
        (folder / change_after_signing).write_bytes(bytes(data))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def certificate_chain(folder, email: str) -> tuple[str, str, str]:
    """A CA and a leaf certificate for `email` (digitalSignature): (leaf key file, leaf cert file, CA PEM)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Stagegate test CA")])

    def usage(**flags):
        names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
                 "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
        return x509.KeyUsage(**{n: flags.get(n, False) for n in names})

    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True).sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, email)]))
            .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(digital_signature=True), critical=True).sign(ca_key, hashes.SHA256()))
    key_file, cert_file = folder / "leaf-key.pem", folder / "leaf.pem"
    key_file.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    return str(key_file), str(cert_file), ca.public_bytes(serialization.Encoding.PEM).decode()


def certificate_signed_files(folder, files: dict[str, bytes], key_file: str, cert_file: str, ca_pem: str) -> dict[str, bytes]:
    from model_signing import signing

    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    chain = folder.parent / "chain.pem"  # the issuing CA, carried in the bundle after the leaf
    chain.write_text(ca_pem)
    signing.Config().use_certificate_signer(private_key=key_file, signing_certificate=cert_file,
                                            certificate_chain=[chain]).sign(folder, folder / "model.sig")
    return {p.name: p.read_bytes() for p in folder.iterdir()}
