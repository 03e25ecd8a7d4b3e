"""The evaluation subprocess: `python -m approvals.evaluation_child <spec.json>`.

Loading a model runs its pickles, so this never runs in the web or worker process and imports no
Django. Before it touches the model it confines itself (as root; each step it cannot take is
reported in `isolation`, never silently skipped):
- a new network namespace (no interface but a downed loopback: every connect fails);
- a new mount namespace where the world-writable /tmp, /var/tmp, /dev/shm and /run/lock are the
  scratch folder's own `tmp` (unless the scratch folder lies below one of them);
- an address-space limit (RLIMIT_AS), and no core files;
- Landlock (the kernel's sandbox, enforced even for root): writes only below the scratch folder,
  reads only Python, its packages, system files and the scratch folder (not the server's data,
  keys or other models), no TCP connect or bind, no signals to processes outside;
- then, as root, it drops every capability (no mounts, no DAC override, no ptrace). Dropping to
  `nobody` was tried first and refused: this Python lives under /root, which `nobody` cannot read.
Then it loads the model with mlflow.pyfunc, checks the input signature against the dataset's
columns, predicts, computes the metrics with scikit-learn and writes one JSON object on the file
descriptor that was stdout (the model's own prints go to stderr, the logs).
"""

import ctypes
import json
import os
import resource
import sys
import time
import traceback

MS_REC, MS_PRIVATE, MS_BIND = 16384, 1 << 18, 4096
LOWER_IS_BETTER = {"rmse", "mae"}


def confine(spec: dict) -> list[str]:
    """Apply the sandbox; returns what was done and what was refused, one note each."""
    notes, bound = [], []
    scratch = spec["scratch"]
    tmp = os.path.join(scratch, "tmp")
    unshare = getattr(os, "unshare", None)
    try:
        if unshare is None:
            raise OSError("os.unshare is not available (Python < 3.12 or not Linux)")
        unshare(os.CLONE_NEWNET)
        notes.append("network: new namespace (no interfaces)")
    except OSError as exc:
        notes.append(f"network not isolated: {exc}")
    try:
        if unshare is None:
            raise OSError("os.unshare is not available")
        unshare(os.CLONE_NEWNS)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
            raise OSError(ctypes.get_errno(), "mount --make-rprivate / failed")
        kept = []
        # Covering a temp folder that holds the scratch folder, Python or this code (a checkout under
        # /tmp) would hide them from the child: such a folder stays shared (Landlock still refuses writes there).
        import site

        needed = [scratch, sys.prefix, sys.base_prefix, *site.getsitepackages(), os.path.dirname(os.path.dirname(__file__))]
        for target in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock"):
            if not os.path.isdir(target):
                continue
            if any((os.path.realpath(path) + "/").startswith(os.path.realpath(target) + "/") for path in needed):
                kept.append(target)
            elif libc.mount(tmp.encode(), target.encode(), None, MS_BIND, None) == 0:
                bound.append(target)
        notes.append(f"filesystem: {', '.join(bound) or 'nothing'} bound to the scratch folder"
                     + (f"; {', '.join(kept)} left shared (the scratch folder, Python or the code lies below)" if kept else ""))
    except OSError as exc:
        notes.append(f"shared temp folders not isolated: {exc}")
    limit = spec.get("memory_mb")
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit * 1024 * 1024, limit * 1024 * 1024))
        notes.append(f"memory: address space limited to {limit} MB")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        notes.append(landlock(scratch, bound))
    except OSError as exc:
        notes.append(f"filesystem not confined: {exc}")
    if os.geteuid() == 0:
        notes.append(drop_capabilities())
    os.chdir(scratch)
    return notes


# Landlock (linux/landlock.h): the rights this sandbox handles, so everything not granted below is denied.
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_WRITE_ANY = sum(1 << bit for bit in range(4, 13)) | FS_WRITE_FILE  # remove/make dir, file, node, link
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446


def _readable_roots(scratch: str) -> list[str]:
    """Where the child may read: Python and its packages, the system's libraries and configuration,
    the kernel's views, and its own scratch folder (not the server's data, keys or other models)."""
    import site

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, "/usr", "/lib", "/lib64", "/etc", "/proc", "/sys", "/dev",
             "/bin", "/sbin", scratch}
    roots.update(site.getsitepackages())
    return sorted({os.path.realpath(r) for r in roots if os.path.exists(r)} | {r for r in roots if os.path.exists(r)})


def landlock(scratch: str, writable: list[str]) -> str:
    """Reads only below `_readable_roots`, writes only below the scratch folder (and /dev/null), no
    TCP connect or bind, no signals to processes outside: enforced by the kernel even for root."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        raise OSError(ctypes.get_errno(), "Landlock is not available in this kernel")
    fs = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR | FS_WRITE_ANY | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = (ctypes.c_uint64 * 3)(fs, net, scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    def allow(path: str, access: int) -> None:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            if not os.path.isdir(path):
                access &= FS_EXECUTE | FS_READ_FILE | FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0)
            rule = PathBeneath(access, fd)
            if libc.syscall(SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule {path} failed")
        finally:
            os.close(fd)

    read = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
    for root in _readable_roots(scratch):
        allow(root, read)
    for folder in [scratch, *writable]:  # the bound temp folders are the scratch's, reached by another path
        allow(folder, fs)
    allow("/dev/null", FS_READ_FILE | FS_WRITE_FILE | (FS_TRUNCATE if abi >= 3 else 0))
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(ruleset)
    return (f"filesystem: Landlock ABI {abi}, writes only in the scratch folder, reads only Python, system files and the scratch"
            + ("; no TCP connect/bind" if net else "") + ("; no signals outside" if scoped else ""))


def drop_capabilities() -> str:
    """Root without capabilities: no mounts, no DAC override, no ptrace of other processes, none regained by exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP (EINVAL past the last capability)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = (ctypes.c_uint32 * 6)()
    if libc.capset(ctypes.byref(header), ctypes.byref(data)) != 0:
        return f"capabilities kept: capset failed ({ctypes.get_errno()})"
    return "user: root without capabilities (its files are the system's, read-only to it under Landlock)"


def _metric(name: str, y, predicted, proba, task: str):
    from sklearn import metrics as m

    if name == "rmse":
        return float(m.mean_squared_error(y, predicted) ** 0.5)
    if name == "mae":
        return float(m.mean_absolute_error(y, predicted))
    if name == "r2":
        return float(m.r2_score(y, predicted))
    if name == "accuracy":
        return float(m.accuracy_score(y, predicted))
    if name == "f1":
        binary = len(set(y.tolist()) | set(list(predicted))) <= 2
        return float(m.f1_score(y, predicted, average="binary" if binary else "weighted",
                                pos_label=sorted(set(y.tolist()))[-1] if binary else 1))
    if name == "roc_auc":
        if proba is None:
            raise ValueError("roc_auc needs class probabilities: the model has no predict_proba")
        if proba.shape[1] == 2:
            return float(m.roc_auc_score(y, proba[:, 1]))
        return float(m.roc_auc_score(y, proba, multi_class="ovr"))
    raise ValueError(f"unknown metric {name}")


def evaluate(spec: dict) -> dict:
    import mlflow
    import pandas as pd
    import sklearn

    environment = {"python": sys.version.split()[0], "mlflow": mlflow.__version__, "scikit-learn": sklearn.__version__}
    path = spec["dataset"]
    frame = pd.read_parquet(path) if spec["format"] == "parquet" else pd.read_csv(path)
    target = spec["target"]
    if target not in frame.columns:
        return {"outcome": "FAILED", "message": f"the dataset has no target column {target!r}", "environment": environment}
    y = frame[target]
    features = frame.drop(columns=[target])
    import mlflow.pyfunc

    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(spec["model_dir"])
    load_seconds = time.perf_counter() - started
    schema = model.metadata.get_input_schema()
    if schema is not None and schema.has_input_names():
        names = schema.input_names()
        missing = [n for n in names if n not in features.columns]
        if missing:
            return {"outcome": "FAILED", "environment": environment, "load_seconds": load_seconds,
                    "message": f"input signature mismatch: the dataset lacks {', '.join(missing)} "
                               f"(signature: {', '.join(names)}; dataset: {', '.join(map(str, features.columns))})"}
        features = features[names]
    started = time.perf_counter()
    predicted = model.predict(features)
    predict_seconds = time.perf_counter() - started
    predicted = predicted.iloc[:, 0] if hasattr(predicted, "iloc") and getattr(predicted, "ndim", 1) == 2 else predicted
    predicted = pd.Series(list(predicted) if not hasattr(predicted, "tolist") else predicted.tolist()).to_numpy()
    proba = None
    if "roc_auc" in spec["metrics"]:
        try:
            raw = model.get_raw_model()
            if hasattr(raw, "predict_proba"):
                proba = raw.predict_proba(features)
        except Exception:  # a pyfunc without a raw model: roc_auc reports why below
            proba = None
    metrics, errors = {}, {}
    for name in spec["metrics"]:
        try:
            metrics[name] = _metric(name, y, predicted, proba, spec["task"])
        except Exception as exc:
            errors[name] = str(exc)
    rows = len(frame)
    return {
        "outcome": "SUCCEEDED" if not errors else "FAILED",
        "message": "; ".join(f"{k}: {v}" for k, v in errors.items()),
        "metrics": metrics, "rows": rows, "load_seconds": load_seconds,
        "latency_ms_per_row": predict_seconds * 1000 / rows if rows else None,
        "environment": environment,
    }


def main() -> int:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    result_fd = os.dup(1)
    os.dup2(2, 1)  # the model's prints go to the logs, never into the result
    result = {"outcome": "FAILED"}
    try:
        result["isolation"] = confine(spec)
        result.update(evaluate(spec))
    except BaseException as exc:  # the model's own failure is the evaluation's result
        traceback.print_exc()
        result.update({"outcome": "FAILED", "message": f"{type(exc).__name__}: {exc}"})
    with os.fdopen(result_fd, "w") as out:
        out.write(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
