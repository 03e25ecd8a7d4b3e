"""A 200 MB artifact goes up and comes back through a real HTTP server without being held in memory."""

import hashlib
import os
import threading
import time

import pytest
import requests

from core.services import create_api_token

SIZE_MB = 200
MAX_RSS_GROWTH = 50 * 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


class RssSampler(threading.Thread):
    """Reads this process's resident set every ~20 ms (live_server runs in a thread of this process)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.baseline = current_rss()
        self.peak = self.baseline
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.is_set():
            self.peak = max(self.peak, current_rss())
            self.stopped.wait(0.02)

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        self.peak = max(self.peak, current_rss())
        return self.peak - self.baseline


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "big.bin"
    digest = hashlib.sha256()
    block = os.urandom(1024 * 1024)
    with open(path, "wb") as f:
        for i in range(SIZE_MB):
            # Every MiB differs, so a mixed-up chunk order would change the checksum.
            chunk = i.to_bytes(8, "big") + block[8:]
            digest.update(chunk)
            f.write(chunk)
    return path, digest.hexdigest()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_200mb_upload_and_download_stream_through_live_server(live_server, owner, big_file, _artifact_root):
    from tracking.services import create_experiment

    path, sha = big_file
    experiment = create_experiment(user=owner, name="large-artifacts")
    relative = f"{experiment.pk}/run/artifacts/big.bin"
    _, token = create_api_token(user=owner, name="large")
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{live_server.url}/api/2.0/mlflow-artifacts/artifacts/{relative}"
    session = requests.Session()
    # Warm the server thread and the auth path so their one-off allocations are not counted.
    warm = session.get(f"{live_server.url}/api/2.0/mlflow-artifacts/artifacts", params={"path": relative}, headers=headers)
    assert warm.status_code == 200

    sampler = RssSampler()
    sampler.start()
    try:
        with open(path, "rb") as f:
            # A file object: requests sets Content-Length and streams the body.
            response = session.put(url, data=f, headers={**headers, "Content-Type": "application/octet-stream"}, timeout=120)
        assert response.status_code == 200, response.text
        stored = _artifact_root / relative
        assert stored.stat().st_size == SIZE_MB * 1024 * 1024

        digest = hashlib.sha256()
        received = 0
        with session.get(url, headers=headers, stream=True, timeout=120) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"] == "application/octet-stream"
            assert int(response.headers["Content-Length"]) == SIZE_MB * 1024 * 1024
            for chunk in response.iter_content(chunk_size=1024 * 1024):
                digest.update(chunk)
                received += len(chunk)
    finally:
        growth = sampler.stop()

    assert received == SIZE_MB * 1024 * 1024
    assert digest.hexdigest() == sha
    assert growth < MAX_RSS_GROWTH, f"RSS grew by {growth / 2**20:.0f} MB while moving a {SIZE_MB} MB file"


@pytest.mark.django_db(transaction=True)
def test_client_disconnecting_mid_upload_leaves_no_file(live_server, owner, _artifact_root, monkeypatch):
    """A real socket closed half-way through the body: the server keeps neither the file nor a temp file."""
    import socket
    from urllib.parse import urlparse

    from core import artifacts
    from tracking.services import create_experiment

    experiment = create_experiment(user=owner, name="aborted-upload")
    _, token = create_api_token(user=owner, name="abort")
    relative = f"{experiment.pk}/run/artifacts/model.pkl"

    finished = threading.Event()
    outcome = {}
    real_save = artifacts.save_stream

    def watched(*args, **kwargs):
        try:
            outcome["written"] = real_save(*args, **kwargs)
        except BaseException as exc:
            outcome["error"] = exc
            raise
        finally:
            finished.set()

    monkeypatch.setattr(artifacts, "save_stream", watched)
    url = urlparse(live_server.url)
    declared, sent = 8 * 1024 * 1024, 3 * 1024 * 1024 + 123
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            (
                f"PUT /api/2.0/mlflow-artifacts/artifacts/{relative} HTTP/1.1\r\n"
                f"Host: {url.netloc}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
            ).encode()
        )
        sock.sendall(b"p" * sent)
        sock.shutdown(socket.SHUT_WR)
    assert finished.wait(10), "the server never finished reading the upload"
    assert isinstance(outcome.get("error"), artifacts.IncompleteUpload)
    assert f"after {sent} of {declared} bytes" in str(outcome["error"])
    assert not _artifact_root.exists() or [p for p in _artifact_root.rglob("*") if p.is_file()] == []
