"""Stagegate against the real MLflow server, side by side, in one run.

    .venv/bin/python bench/compare.py [--runs 2000 --models 50 --versions 20] [--threads 8] [--seconds 20]

What it does, on this machine, on loopback:
1. installs the real MLflow server (3.x) in its own venv under var/bench/ (once);
2. creates two PostgreSQL databases (bench_mlflow, bench_stagegate) and starts both servers
   with the same number of worker processes (MLflow: uvicorn --workers N; Stagegate: gunicorn
   --workers N), plus the floor: a bare Django primary-key view (bench/floor_app.py);
3. seeds both through their REST APIs with the same client code (runs with log-batch, registered
   models x versions with tags, stage transitions), in three growth steps (10 %, 50 %, 100 %);
4. drives a read mix and a write mix against each, alternating servers, with the same thread
   count, checking every response (a wrong answer counts as an error);
5. prints per-endpoint throughput, p50/p99 and the Stagegate/MLflow ratio, server CPU per
   `registered-models/get` against the floor, and each server's peak memory (RSS of all its
   processes).

It is a benchmark, not a test: nothing here asserts; read the figures.
"""

import argparse
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import orjson
import requests
import urllib3

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "var" / "bench"
MLFLOW_VENV = WORK / "mlflow-server-venv"
PG = "postgres://postgres@127.0.0.1:5432"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:  # field 6 of stat: session id
            pids.append(int(entry))
    return pids


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict, port: int, health: str):
        self.name, self.port, self.url = name, port, f"http://127.0.0.1:{port}"
        self.log = open(WORK / f"{name}.log", "w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.peak_rss = self.peak_web_rss = 0
        self._sampling = True
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited; see {self.log.name}")
            try:
                if requests.get(self.url + health, timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        else:
            raise SystemExit(f"{name} did not start; see {self.log.name}")
        threading.Thread(target=self._sample, daemon=True).start()

    def pids(self) -> list[int]:
        return session_pids(self.proc.pid)

    def web_pids(self) -> list[int]:
        """The server's processes without its job runners (MLflow's huey consumers, Stagegate's Celery worker)."""
        pids = []
        for pid in self.pids():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if not (b"huey" in cmdline or b"celery" in cmdline or cmdline.startswith(b"sh\0")):
                pids.append(pid)
        return pids

    def rss(self, *, web_only: bool = False) -> int:
        """RSS of all the server's processes; `web_only` leaves out the job runners."""
        total = 0
        for pid in self.web_pids() if web_only else self.pids():
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
            except OSError:
                pass
        return total

    def cpu_seconds(self) -> float:
        """CPU time of the web processes: a job runner still working off the write mix must not count
        against a read."""
        total = 0
        for pid in self.web_pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime + stime
            except (OSError, IndexError):
                pass
        return total / CLK_TCK

    def all_cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError):
                pass
        return total / CLK_TCK

    def settle(self, *, idle: float = 0.05, timeout: float = 180) -> float:
        """Wait until every process of the server (job runners included) is idle: less than `idle`
        s of CPU in one second. Left-over background work (registrations of the seed, events) would
        otherwise steal the CPU of the next measurement. Returns the seconds waited."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            before = self.all_cpu_seconds()
            time.sleep(1)
            if self.all_cpu_seconds() - before < idle:
                break
        return time.perf_counter() - start

    def _sample(self):
        while self._sampling:
            self.peak_rss = max(self.peak_rss, self.rss())
            self.peak_web_rss = max(self.peak_web_rss, self.rss(web_only=True))
            time.sleep(0.2)

    def stop(self):
        self._sampling = False
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def sh(*cmd, env=None, check=True):
    return subprocess.run(cmd, cwd=ROOT, env=env, check=check, capture_output=True, text=True)


def ensure_mlflow_server() -> Path:
    python = MLFLOW_VENV / "bin" / "python"
    if not (MLFLOW_VENV / ".installed").exists():
        print("installing the MLflow server into", MLFLOW_VENV, flush=True)
        sh(sys.executable, "-m", "venv", str(MLFLOW_VENV))
        sh(str(python), "-m", "pip", "install", "-q", "--upgrade", "pip")
        sh(str(python), "-m", "pip", "install", "-q", "mlflow>=3.17,<4", "psycopg[binary]")
        # 3.18.0's own wheel is self-contained but pins a skinny release the index may not have yet.
        sh(str(python), "-m", "pip", "install", "-q", "--no-deps", "mlflow==3.18.0", check=False)
        (MLFLOW_VENV / ".installed").touch()
    version = sh(str(python), "-c", "import mlflow; print(mlflow.__version__)").stdout.strip()
    print("MLflow server version", version, flush=True)
    return python


def recreate_database(name: str):
    sh("psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    sh("psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {name}")


# --------------------------------------------------------------------------- the client


class Client:
    """The same client for both servers. API calls go through urllib3's connection pool directly and
    decode with orjson: `requests` and the json module cost several times the client CPU per call,
    and the client shares the 2 cores with the servers, so a heavy client caps the faster server
    more than the slower one."""

    def __init__(self, name: str, base: str, headers: dict):
        self.name, self.base = name, base
        self.local = threading.local()
        self.headers = {"Content-Type": "application/json", **headers}
        self._pools: dict[int, urllib3.HTTPConnectionPool] = {}

    @property
    def pool(self) -> urllib3.HTTPConnectionPool:
        """One connection pool per process (a forked client process must not share its parent's sockets)."""
        pool = self._pools.get(os.getpid())
        if pool is None:
            host, port = self.base.removeprefix("http://").split(":")
            pool = self._pools[os.getpid()] = urllib3.HTTPConnectionPool(host, int(port), maxsize=64, block=True, retries=False, timeout=120)
        return pool

    @property
    def http(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.local.session.headers.update(self.headers)
        return self.local.session

    def call(self, method: str, path: str, body=None, params=None) -> dict:
        url = "/api/2.0/mlflow/" + path
        if method == "GET":
            response = self.pool.request("GET", url + ("?" + urlencode(params, doseq=True) if params else ""), headers=self.headers)
        else:
            response = self.pool.request(method, url, body=orjson.dumps(body or {}), headers=self.headers)
        if response.status != 200:
            raise AssertionError(f"{method} {path} -> {response.status} {response.data[:200]!r}")
        return orjson.loads(response.data)

    def put_artifact(self, path: str, data: bytes):
        response = self.http.put(self.base + "/api/2.0/mlflow-artifacts/artifacts/" + path, data=data,
                                 headers={"Content-Type": "application/octet-stream"}, timeout=120)
        if response.status_code != 200:
            raise AssertionError(f"PUT artifact -> {response.status_code} {response.text[:200]}")


class Stats:
    def __init__(self):
        self.latencies = defaultdict(list)
        self.errors = defaultdict(int)
        self.lock = threading.Lock()

    def timed(self, op: str, fn):
        start = time.perf_counter()
        try:
            fn()
        except Exception as error:  # a wrong answer is an error
            with self.lock:
                self.errors[op] += 1
                if self.errors[op] <= 3:
                    print(f"  ! {op}: {error}", flush=True)
            return
        with self.lock:
            self.latencies[op].append(time.perf_counter() - start)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# --------------------------------------------------------------------------- workloads

MLMODEL = b"artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n    python_version: 3.12.0\n"


class World:
    """What was seeded, so reads can be checked."""

    def __init__(self):
        self.experiment_id = None
        self.runs: list[str] = []
        self.model_runs: list[str] = []  # runs that carry an MLmodel file, for versions to point at
        self.models: dict[str, int] = {}  # name -> versions
        self.lock = threading.Lock()


def seed(client: Client, world: World, *, runs: int, models: int, versions: int, threads: int) -> dict:
    stats = Stats()
    if world.experiment_id is None:
        world.experiment_id = client.call("POST", "experiments/create", {"name": "bench"})["experiment_id"]
    exp = world.experiment_id
    rng = random.Random(7)

    def one_run(i):
        def go():
            run = client.call("POST", "runs/create", {"experiment_id": exp, "start_time": int(time.time() * 1000), "run_name": f"r{i}"})["run"]["info"]
            rid = run["run_id"]
            now = int(time.time() * 1000)
            client.call("POST", "runs/log-batch", {
                "run_id": rid,
                "params": [{"key": f"p{k}", "value": str(rng.random())} for k in range(5)],
                "metrics": [{"key": f"m{k}", "value": rng.random(), "timestamp": now, "step": 0} for k in range(5)],
                "tags": [{"key": "team", "value": "bench"}, {"key": "i", "value": str(i)}],
            })
            if i % 20 == 0:  # a model file for the runs that versions will point at
                client.put_artifact(f"{exp}/{rid}/artifacts/model/MLmodel", MLMODEL)
            client.call("POST", "runs/update", {"run_id": rid, "status": "FINISHED", "end_time": now})
            with world.lock:
                world.runs.append(rid)
                if i % 20 == 0:
                    world.model_runs.append(rid)
        stats.timed("seed:run", go)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one_run, range(len(world.runs), len(world.runs) + runs)))
    model_runs = world.model_runs

    def one_model(m):
        def go():
            name = f"model-{m:04d}"
            if name not in world.models:
                client.call("POST", "registered-models/create", {"name": name, "tags": [{"key": "team", "value": "bench"}]})
                world.models[name] = 0
            for _ in range(versions):
                rid = rng.choice(model_runs)
                mv = client.call("POST", "model-versions/create", {"name": name, "source": f"mlflow-artifacts:/{exp}/{rid}/artifacts/model", "run_id": rid})["model_version"]
                client.call("POST", "model-versions/set-tag", {"name": name, "version": mv["version"], "key": "validated", "value": "true"})
                world.models[name] += 1
            n = world.models[name]
            # archive_existing_versions=true is not used: MLflow 3.18 on PostgreSQL answers it with
            # 400 "operator does not exist: integer <> character varying" (its own SQL bug).
            client.call("POST", "model-versions/transition-stage", {"name": name, "version": str(n), "stage": "Production", "archive_existing_versions": False})
            if n > 1:
                client.call("POST", "model-versions/transition-stage", {"name": name, "version": str(n - 1), "stage": "Staging", "archive_existing_versions": False})
        stats.timed("seed:model", go)

    first = len(world.models)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one_model, range(first, first + models)))
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "errors": sum(stats.errors.values()), "runs": len(world.runs), "versions": sum(world.models.values())}


def read_ops(client: Client, world: World, rng: random.Random):
    names = sorted(world.models)
    exp = world.experiment_id

    def rm_get():
        name = rng.choice(names)
        assert client.call("GET", "registered-models/get", params={"name": name})["registered_model"]["name"] == name

    def latest():
        name = rng.choice(names)
        versions = client.call("POST", "registered-models/get-latest-versions", {"name": name})["model_versions"]
        stages = {v["current_stage"] for v in versions}
        assert "Production" in stages and all(v["name"] == name for v in versions), stages

    def mv_get():
        name = rng.choice(names)
        version = str(rng.randint(1, world.models[name]))
        assert client.call("GET", "model-versions/get", params={"name": name, "version": version})["model_version"]["version"] == version

    def mv_search():
        name = rng.choice(names)
        found = client.call("GET", "model-versions/search", params={"filter": f"name='{name}'", "max_results": 50}).get("model_versions", [])
        assert len(found) == min(50, world.models[name]) and all(v["name"] == name for v in found)

    def rm_search():
        prefix = f"model-00{rng.randint(0, 9)}"
        expected = sum(1 for n in names if n.startswith(prefix))
        seen, token = 0, None
        while True:
            params = {"filter": f"name LIKE '{prefix}%' AND tag.`mlflow.prompt.is_prompt` != 'true'", "max_results": 5}
            if token:
                params["page_token"] = token
            page = client.call("GET", "registered-models/search", params=params)
            seen += len(page.get("registered_models", []))
            token = page.get("next_page_token")
            if not token:
                break
        assert seen == expected, (seen, expected)

    def runs_search():
        threshold = round(rng.uniform(0.2, 0.8), 3)
        runs = client.call("POST", "runs/search", {"experiment_ids": [exp], "filter": f"metrics.m0 < {threshold}", "order_by": ["metrics.m0 ASC"], "max_results": 100}).get("runs", [])
        values = [next(m["value"] for m in r["data"]["metrics"] if m["key"] == "m0") for r in runs]
        assert values == sorted(values) and all(v < threshold for v in values) and runs

    def history():
        rid = rng.choice(world.runs)
        points = client.call("GET", "metrics/get-history", params={"run_id": rid, "run_uuid": rid, "metric_key": "m0", "max_results": 25000})["metrics"]
        assert len(points) == 1 and points[0]["key"] == "m0"

    return {"registered-models/get": rm_get, "get-latest-versions": latest, "model-versions/get": mv_get,
            "model-versions/search": mv_search, "registered-models/search (LIKE, paged)": rm_search,
            "runs/search (metric filter+order)": runs_search, "metrics/get-history": history}


def write_ops(client: Client, world: World, rng: random.Random):
    exp = world.experiment_id
    names = sorted(world.models)
    model_runs = world.model_runs

    def run_and_batch():
        rid = client.call("POST", "runs/create", {"experiment_id": exp, "start_time": int(time.time() * 1000)})["run"]["info"]["run_id"]
        now = int(time.time() * 1000)
        client.call("POST", "runs/log-batch", {"run_id": rid, "params": [{"key": "a", "value": "1"}], "metrics": [{"key": "m0", "value": rng.random(), "timestamp": now, "step": 0}]})

    def mv_create():
        name = rng.choice(names)
        rid = rng.choice(model_runs)
        mv = client.call("POST", "model-versions/create", {"name": name, "source": f"mlflow-artifacts:/{exp}/{rid}/artifacts/model", "run_id": rid})["model_version"]
        assert mv["name"] == name and int(mv["version"]) > 0
        with world.lock:
            world.models[name] = max(world.models[name], int(mv["version"]))

    def transition():
        name = rng.choice(names)
        version = str(rng.randint(1, world.models[name]))
        mv = client.call("POST", "model-versions/transition-stage", {"name": name, "version": version, "stage": "Staging", "archive_existing_versions": False})["model_version"]
        assert mv["current_stage"] == "Staging"

    def set_tag():
        name = rng.choice(names)
        version = str(rng.randint(1, world.models[name]))
        client.call("POST", "model-versions/set-tag", {"name": name, "version": version, "key": "checked", "value": str(rng.random())})

    return {"runs/create + log-batch": run_and_batch, "model-versions/create": mv_create,
            "model-versions/transition-stage": transition, "model-versions/set-tag": set_tag}


def _drive_threads(ops: dict, *, first: int, threads: int, seconds: float) -> tuple[Stats, float]:
    stats = Stats()
    names = list(ops)
    stop = time.monotonic() + seconds

    def worker(i):
        rng = random.Random(i)
        while time.monotonic() < stop:
            op = rng.choice(names)
            stats.timed(op, ops[op])

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(first, first + threads)))
    return stats, time.perf_counter() - start


def drive(ops: dict, *, threads: int, seconds: float, processes: int = 1) -> tuple[Stats, float]:
    """Run `ops` (picked at random, thread i seeded with i) from `threads` client threads for `seconds`.

    With `processes` > 1 the threads are spread over that many forked client processes: one Python
    process runs one thread at a time (the GIL), and at ~200 ops/s the client's own JSON decoding
    and checking, not the server, became the limit, which capped the faster server only.
    """
    if processes <= 1:
        return _drive_threads(ops, first=0, threads=threads, seconds=seconds)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    shares = [threads // processes + (1 if i < threads % processes else 0) for i in range(processes)]
    firsts = [sum(shares[:i]) for i in range(processes)]

    def child(first: int, count: int):
        stats, elapsed = _drive_threads(ops, first=first, threads=count, seconds=seconds)
        results.put((dict(stats.latencies), dict(stats.errors), elapsed))

    children = [context.Process(target=child, args=(first, count)) for first, count in zip(firsts, shares) if count]
    for process in children:
        process.start()
    merged, elapsed = Stats(), 0.0
    for _ in children:
        latencies, errors, seconds_taken = results.get()
        for op, values in latencies.items():
            merged.latencies[op].extend(values)
        for op, count in errors.items():
            merged.errors[op] += count
        elapsed = max(elapsed, seconds_taken)
    for process in children:
        process.join()
    return merged, elapsed


def cpu_per_request(targets: dict, *, n: int = 300, rounds: int = 5) -> dict:
    """Web-process CPU per request, one request at a time, for each {name: (server, url, headers)}:
    the median of `rounds` rounds of `n`, the servers taking turns round by round so that drift in
    the machine's load touches them alike."""
    sessions = {}
    for name, (_, url, headers) in targets.items():
        session = sessions[name] = requests.Session()
        session.headers.update(headers)
        for _ in range(20):
            session.get(url, timeout=30)
    figures = {name: [] for name in targets}
    for _ in range(rounds):
        for name, (server, url, _) in targets.items():
            before = server.cpu_seconds()
            for _ in range(n):
                assert sessions[name].get(url, timeout=30).status_code == 200
            figures[name].append((server.cpu_seconds() - before) / n * 1000)
    return {name: statistics.median(values) for name, values in figures.items()}


def measured(server: "Server", run) -> tuple:
    """run() (a drive()) and the server CPU the mix cost per operation: (web ms, job-runner ms). The
    CPU is read once the background work the mix caused (registrations, events) has settled, so
    work a server defers past the end of the mix still counts."""
    before = (server.cpu_seconds(), server.all_cpu_seconds())
    stats, elapsed = run()
    server.settle()
    web, total = server.cpu_seconds() - before[0], server.all_cpu_seconds() - before[1]
    ops = sum(len(v) for v in stats.latencies.values()) or 1
    return stats, elapsed, (web / ops * 1000, (total - web) / ops * 1000)


def report_mix(title: str, results: dict, *, timeouts: dict | None = None, width: int = 40):
    """Print the side-by-side table of one mix (`title` as its heading when given); with `timeouts`
    ({server: {op: count}}) a column of the requests the client gave up on. Returns
    {op: (MLflow ops/s, MLflow p99, Stagegate ops/s, Stagegate p99)}."""
    if title:
        print(f"\n## {title}")
    late_head = f" {'timeouts M/S':>12}" if timeouts is not None else ""
    print(f"{'endpoint':{width}} {'MLflow ops/s':>12} {'p50 ms':>8} {'p99 ms':>8} | {'Stagegate ops/s':>15} {'p50 ms':>8} {'p99 ms':>8} | {'ratio':>6} {'errors M/S':>10}{late_head}")
    ops = sorted({op for stats, _, _ in results.values() for op in (*stats.latencies, *stats.errors)})
    totals = {}
    for op in ops + ["ALL"]:
        row = []
        for name in ("mlflow", "stagegate"):
            stats, elapsed, _ = results[name]
            lat = [x for values in stats.latencies.values() for x in values] if op == "ALL" else stats.latencies.get(op, [])
            errors = sum(stats.errors.values()) if op == "ALL" else stats.errors.get(op, 0)
            late = 0
            if timeouts is not None:
                late = sum(timeouts[name].values()) if op == "ALL" else timeouts[name].get(op, 0)
            row.append((len(lat) / elapsed, percentile(lat, 50) * 1000, percentile(lat, 99) * 1000, errors, late))
        (mt, m50, m99, me, ml), (st, s50, s99, se, sl) = row
        ratio = st / mt if mt else float("inf")
        totals[op] = (mt, m99, st, s99)
        late_cell = f" {ml:>6}/{sl:<5}" if timeouts is not None else ""
        print(f"{op:{width}} {mt:12.1f} {m50:8.1f} {m99:8.1f} | {st:15.1f} {s50:8.1f} {s99:8.1f} | {ratio:6.2f} {me:>4}/{se:<4}{late_cell}")
    (mw, mj), (sw, sj) = results["mlflow"][2], results["stagegate"][2]
    print(f"{'server CPU per op, ms (web + job runners)':{width}} {mw:12.2f} + {mj:.2f}{'':>8} | {sw:15.2f} + {sj:.2f}")
    return totals


def stagegate_command(venv_bin: Path, port: int, args) -> list[str]:
    gunicorn = [str(venv_bin / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
                "--threads", "4", "--worker-class", "gthread", "--keep-alive", "30",
                "--limit-request-line", "0", "--limit-request-field_size", "16384"]
    if args.jobs != "celery":
        return gunicorn
    # One session for both, so the sampler sees the worker (and stop() ends it).
    worker = f"{venv_bin / 'celery'} -A config worker --concurrency 1 --loglevel WARNING -Q bench"
    return ["sh", "-c", f"{worker} & exec " + " ".join(gunicorn)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--client-processes", type=int, default=2,
                        help="client processes the client threads are spread over (the same for both servers)")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--steps", default="10,50,100", help="growth steps in percent of the seed")
    parser.add_argument("--jobs", choices=["celery", "eager"], default="celery",
                        help="Stagegate's background jobs: a Celery worker on Redis DB 8 (the deployed topology; its RSS "
                             "is counted like MLflow's job runner) or eager, inside the web request")
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    mlflow_python = ensure_mlflow_server()
    for name in ("bench_mlflow", "bench_stagegate", "bench_floor"):
        recreate_database(name)
    artifacts = WORK / "mlflow-artifacts"
    shutil.rmtree(artifacts, ignore_errors=True)
    shutil.rmtree(WORK / "stagegate-var", ignore_errors=True)

    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CELERY_", "STAGEGATE_", "MLFLOW_"))}
    sg_env = {**base_env, "DATABASE_URL": f"{PG}/bench_stagegate", "STAGEGATE_VAR_DIR": str(WORK / "stagegate-var"),
              "STAGEGATE_ADMIN_PASSWORD": "bench-password", "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost"}
    if args.jobs == "celery":
        sg_env.update({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/8", "CELERY_TASK_DEFAULT_QUEUE": "bench"})
        sh("redis-cli", "-n", "8", "flushdb", check=False)
    venv_bin = ROOT / ".venv" / "bin"
    sh(str(venv_bin / "python"), "manage.py", "migrate", "--noinput", env=sg_env)
    sh(str(venv_bin / "python"), "manage.py", "bootstrap", env=sg_env)
    token = sh(str(venv_bin / "python"), "manage.py", "create_api_token", "admin", "--name", "bench", env=sg_env).stdout.strip()
    floor_env = {**base_env, "DATABASE_URL": f"{PG}/bench_floor"}
    sh(str(venv_bin / "python"), "bench/floor_app.py", env=floor_env)

    servers = {
        "mlflow": Server("mlflow", [str(mlflow_python.parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port := free_port()),
                                    "--workers", str(args.workers), "--backend-store-uri", f"postgresql+psycopg://postgres@127.0.0.1:5432/bench_mlflow",
                                    "--serve-artifacts", "--artifacts-destination", str(artifacts)], {**base_env}, port, "/health"),
        "stagegate": Server("stagegate", stagegate_command(venv_bin, port2 := free_port(), args), sg_env, port2, "/health"),
    }
    floor = Server("floor", [str(venv_bin / "gunicorn"), "bench.floor_app", "--bind", f"127.0.0.1:{(port3 := free_port())}",
                            "--workers", str(args.workers), "--threads", "4", "--worker-class", "gthread", "--keep-alive", "30"], floor_env, port3, "/floor/1")
    clients = {"mlflow": Client("mlflow", servers["mlflow"].url, {}),
               "stagegate": Client("stagegate", servers["stagegate"].url, {"Authorization": f"Bearer {token}"})}
    worlds = {"mlflow": World(), "stagegate": World()}

    print(f"\n# Stagegate vs MLflow — {time.strftime('%Y-%m-%d %H:%M')} — {os.cpu_count()} cores — "
          f"{args.workers} workers each, {args.threads} client threads in {args.client_processes} processes, {args.seconds:.0f} s per mix")
    try:
        done = 0
        steps = [int(s) for s in args.steps.split(",")]
        for step in steps:
            share = (step - done) / 100
            done = step
            print(f"\n# growth step {step} %")
            for name in ("mlflow", "stagegate"):
                result = seed(clients[name], worlds[name], runs=round(args.runs * share), models=round(args.models * share),
                              versions=args.versions, threads=args.threads)
                print(f"seed {name:9}: {result}")
            for database in ("bench_mlflow", "bench_stagegate"):
                # Fresh statistics for both planners, as autovacuum would give them a little later.
                sh("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-qc", "ANALYZE")
            results = {}
            for name in ("mlflow", "stagegate"):
                servers[name].settle()
                results[name] = measured(servers[name], lambda: drive(read_ops(clients[name], worlds[name], random.Random(step)), threads=args.threads, seconds=args.seconds, processes=args.client_processes))
            reads_last = report_mix(f"read mix at {step} %", results)
        results = {}
        for name in ("mlflow", "stagegate"):
            servers[name].settle()
            results[name] = measured(servers[name], lambda: drive(write_ops(clients[name], worlds[name], random.Random(99)), threads=args.threads, seconds=args.seconds, processes=args.client_processes))
        writes = report_mix("write mix", results)

        name = sorted(worlds["stagegate"].models)[0]
        for server in servers.values():
            print(f"settled {server.name} in {server.settle():.0f} s")
        cpu = cpu_per_request({
            "stagegate": (servers["stagegate"], f"{servers['stagegate'].url}/api/2.0/mlflow/registered-models/get?name={name}", {"Authorization": f"Bearer {token}"}),
            "floor": (floor, f"{floor.url}/floor/7", {}),
            "mlflow": (servers["mlflow"], f"{servers['mlflow'].url}/api/2.0/mlflow/registered-models/get?name={name}", {}),
        })
        sg_cpu, ml_cpu, floor_cpu = cpu["stagegate"], cpu["mlflow"], cpu["floor"]
        print("\n## server CPU per registered-models/get (ms)")
        print(f"MLflow {ml_cpu:.2f} | Stagegate {sg_cpu:.2f} | bare Django PK view {floor_cpu:.2f} | Stagegate/floor {sg_cpu / floor_cpu:.2f}")
        print("\n## peak memory (RSS of all server processes; web = without the job runners: MLflow's huey consumers, Stagegate's Celery worker)")
        for name, server in servers.items():
            print(f"{name:10} all {server.peak_rss / 2**20:8.0f} MB   web {server.peak_web_rss / 2**20:8.0f} MB")
        print("\n## targets")
        read, write = reads_last, writes
        runs_op = "runs/search (metric filter+order)"
        rows = [
            ("read mix throughput >= 5x MLflow", read["ALL"][2] / read["ALL"][0], ">= 5"),
            ("read mix p99 <= 1/5 of MLflow", read["ALL"][3] / read["ALL"][1], "<= 0.2"),
            ("write mix throughput >= 3x MLflow", write["ALL"][2] / write["ALL"][0], ">= 3"),
            ("runs/search p99 <= 1/10 of MLflow", read[runs_op][3] / read[runs_op][1], "<= 0.1"),
            ("registered-models/get CPU <= 2x floor", sg_cpu / floor_cpu, "<= 2"),
        ]
        for label, value, goal in rows:
            print(f"{label:42} {value:7.2f}  (goal {goal})")
        print(f"{'Stagegate web workers RSS <= 400 MB':42} {servers['stagegate'].peak_web_rss / 2**20:7.0f}")
    finally:
        for server in [*servers.values(), floor]:
            server.stop()


if __name__ == "__main__":
    main()
