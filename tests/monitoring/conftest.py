"""Monitoring fixtures: a real HTTP receiver on loopback, loopback allowed as a webhook target,
commit callbacks run as in production (shared with the registry tests)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.registry.conftest import _run_commit_callbacks, make_version, manual_on_commit, model_files  # noqa: F401


class Receiver:
    """Records every request (headers + raw body) and answers from a script of responses.

    `script` is a list of (status, headers, body) used in order; the last one repeats.
    `hold` (a threading.Event) makes the handler wait before answering (to kill a worker mid-request).
    """

    def __init__(self):
        self.requests: list[dict] = []
        self.script = [(200, {}, b"ok")]
        self.hold: threading.Event | None = None
        self.arrived = threading.Event()
        self._lock = threading.Lock()
        self.server = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def respond(self, *script):
        self.script = [s if isinstance(s, tuple) else (s, {}, b"") for s in script]

    def bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]


def _handler(receiver: Receiver):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with receiver._lock:
                index = len(receiver.requests)
                receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                status, headers, payload = receiver.script[min(index, len(receiver.script) - 1)]
            receiver.arrived.set()
            if receiver.hold is not None:
                receiver.hold.wait(30)
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def receiver():
    rec = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    server.daemon_threads = True
    rec.server = server
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield rec
    if rec.hold is not None:
        rec.hold.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _webhook_settings(settings):
    """Loopback is refused by default; the tests allow it explicitly. Immediate digests, fast retries off."""
    settings.STAGEGATE_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1/32"]
    settings.STAGEGATE_WEBHOOK_TIMEOUT = 5
    settings.STAGEGATE_EMAIL_BATCH_SECONDS = 0


@pytest.fixture
def admin_api(api_for, admin):
    return api_for(admin)
