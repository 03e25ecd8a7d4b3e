"""Artifacts in S3: a real S3 server (moto's, on loopback), configured through STAGEGATE_ARTIFACTS_S3_*.

The real mlflow client logs, registers, downloads and loads models through the server; every
object lands in the bucket and nothing on local disk; the version's copy is made inside the bucket;
large files stream both ways with flat memory (multipart); listings page past 1,000 keys.
"""

import hashlib
import os
import runpy
import socket
import subprocess
import sys
import time
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.client.test_clients import check_tracking_facts, run_flow
from tests.core.test_make_run import free_port

ROOT = Path(__file__).resolve().parents[2]
MB = 1024 * 1024

pytestmark = [pytest.mark.client, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """moto's S3 server on a free loopback port for the session; its endpoint URL."""
    executable = Path(sys.executable).with_name("moto_server")
    assert executable.exists(), "moto[server] is in the dev extra (make test installs it)"
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    proc = subprocess.Popen([str(executable), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "moto_server exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not listen"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class Bucket:
    def __init__(self, client, name: str, prefix: str):
        self.client, self.name, self.prefix = client, name, prefix

    def keys(self, below: str = "") -> dict[str, int]:
        """{key without the prefix: size} of every object (paged)."""
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=self.prefix + below):
            for obj in page.get("Contents", ()):
                found[obj["Key"][len(self.prefix):]] = obj["Size"]
        return found


@pytest.fixture
def s3(moto_server, settings, monkeypatch, tmp_path, _artifact_root):
    """The artifact store as config/settings.py builds it from STAGEGATE_ARTIFACTS_S3_* (a new bucket per test)."""
    import boto3
    from django.core.files.storage import storages

    name = f"artifacts-{uuid.uuid4().hex[:12]}"
    env = {
        "STAGEGATE_ARTIFACTS_S3_BUCKET": name, "STAGEGATE_ARTIFACTS_S3_PREFIX": "stagegate",
        "STAGEGATE_ARTIFACTS_S3_ENDPOINT_URL": moto_server, "STAGEGATE_ARTIFACTS_S3_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "STAGEGATE_VAR_DIR": str(tmp_path / "var"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    built = runpy.run_path(str(ROOT / "config" / "settings.py"))
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=name)
    settings.STORAGES = {**settings.STORAGES, "artifacts": built["STORAGES"]["artifacts"]}
    storages._storages.pop("artifacts", None)
    storages.backends = settings.STORAGES
    assert type(storages["artifacts"]).__name__ == "S3Storage"
    yield Bucket(client, name, "stagegate/")
    storages._storages.pop("artifacts", None)
    # Nothing was written under the local artifact root.
    assert not _artifact_root.exists() or not any(p.is_file() for p in _artifact_root.rglob("*"))


@pytest.fixture
def s3_operations(monkeypatch) -> list[str]:
    """The S3 operations every boto3 client makes from now on (the server's run in live_server's threads)."""
    from botocore.client import BaseClient

    calls, original = [], BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        calls.append(operation_name)
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return calls


def test_mlflow_client_logs_registers_and_loads_models_in_the_bucket(s3, s3_operations, live_server, owner, tmp_path):
    from registry.models import ModelVersion
    from registry import sources

    facts = run_flow(sys.executable, live_server, owner, tmp_path, "--register", "s3_model")
    check_tracking_facts(facts, owner)
    assert (facts["registered_version"], facts["registered_status"]) == ("1", "READY")
    assert facts["registry_loads_equal"] is True and facts["version_loads_equal"] is True

    keys = s3.keys()
    run_folder = f"{facts['experiment_id']}/"
    assert any(k.startswith(run_folder) and k.endswith("/reports/deep/data.csv") for k in keys), sorted(keys)[:20]
    # The version's own immutable copy, inside the bucket, made by S3 (CopyObject), not uploaded again.
    version = ModelVersion.objects.get(registered_model__name="s3_model", version=1)
    copied = s3.keys(version.storage_path + "/")
    assert f"{version.storage_path}/MLmodel" in copied, sorted(copied)
    assert "CopyObject" in s3_operations
    source = sources.resolve(source=version.source, user=owner, run_id=version.run_id, model_id=version.model_id).path
    logged = {k[len(source) + 1:]: size for k, size in s3.keys(source + "/").items()}
    assert logged and {k[len(version.storage_path) + 1:]: size for k, size in copied.items()} == logged


def write_file(path: Path, size: int) -> str:
    """A file of `size` bytes (1 MB blocks that differ); its sha256."""
    digest = hashlib.sha256()
    block = hashlib.sha256(b"seed").digest() * (MB // 32)
    with open(path, "wb") as out:
        for i in range(size // MB):
            chunk = bytes([i % 251]) + block[1:]
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def test_large_artifacts_stream_both_ways_with_flat_memory(s3, s3_operations, mlflow_client, tmp_path):
    """A 16 MB and a 64 MB artifact up and down through the proxy: the server's peak memory (traced; the
    client is curl, in its own process) is the same for both, a few 8 MB parts, whatever the file size."""
    token = os.environ["MLFLOW_TRACKING_TOKEN"]
    run = mlflow_client.create_run(mlflow_client.create_experiment("big-files")).info
    peaks = {}
    for size in (16 * MB, 64 * MB):
        digest = write_file(tmp_path / "big.bin", size)
        key = run.artifact_uri.split(":/", 1)[1] + f"/big-{size // MB}.bin"
        url = f"{mlflow_client.tracking_uri}/api/2.0/mlflow-artifacts/artifacts/{key}"
        tracemalloc.start()
        try:
            upload = subprocess.run(["curl", "-sS", "-f", "-T", str(tmp_path / "big.bin"), "-H", f"Authorization: Bearer {token}", url],
                                    capture_output=True, text=True, timeout=300)
            _, upload_peak = tracemalloc.get_traced_memory()
            assert upload.returncode == 0, upload.stderr
            tracemalloc.reset_peak()
            downloaded = hashlib.sha256()
            with subprocess.Popen(["curl", "-sS", "-f", "-H", f"Authorization: Bearer {token}", url], stdout=subprocess.PIPE) as proc:
                while chunk := proc.stdout.read(MB):
                    downloaded.update(chunk)
            _, download_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert proc.returncode == 0
        assert downloaded.hexdigest() == digest
        head = s3.client.head_object(Bucket=s3.name, Key=s3.prefix + key)
        assert head["ContentLength"] == size
        assert head["ETag"].endswith(f'-{size // (8 * MB)}"'), "multipart: '<md5 of the part md5s>-<number of 8 MB parts>'"
        peaks[size // MB] = (upload_peak / MB, download_peak / MB)
    print("server memory peaks (upload, download) in MB by file size in MB:", {k: (round(u, 1), round(d, 1)) for k, (u, d) in peaks.items()})
    assert "UploadPart" in s3_operations and "PutObject" not in s3_operations
    (small_up, small_down), (big_up, big_down) = peaks[16], peaks[64]
    # Flat: four times the bytes, no more memory (a new boto3 client per live_server thread is in both).
    assert big_up < small_up + 8 and big_down < small_down + 8, peaks
    assert big_up < 64 / 2 and big_down < 64 / 4, peaks
    assert requests.get(url + "x", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 404


def test_listings_page_past_1000_keys(s3, mlflow_client):
    import mlflow

    experiment_id = mlflow_client.create_experiment("many-files")
    run = mlflow_client.create_run(experiment_id)
    folder = run.info.artifact_uri.split(":/", 1)[1] + "/many/"
    names = [f"f{i:04d}.txt" for i in range(1100)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: s3.client.put_object(Bucket=s3.name, Key=s3.prefix + folder + n, Body=n.encode()), names))
    s3.client.put_object(Bucket=s3.name, Key=s3.prefix + folder + "sub/deep.txt", Body=b"x")

    listed = mlflow_client.list_artifacts(run.info.run_id, "many")
    assert [f.path for f in listed if not f.is_dir] == [f"many/{n}" for n in names]
    assert [f.path for f in listed if f.is_dir] == ["many/sub"]
    assert {f.file_size for f in listed if not f.is_dir} == {9}
    assert len(mlflow.artifacts.list_artifacts(run_id=run.info.run_id, artifact_path="many")) == 1101
