"""Input rules shared by the API gate (core.api) and the services that create names.

Two kinds of rule:
- the gate's, applied to every JSON body, query string and URL argument of the API before any view
  runs (`check_json_body`, `check_query`): no NUL or unpaired surrogate in any string (PostgreSQL
  text cannot hold NUL; UTF-8 cannot encode a lone surrogate), integers within int64, nesting at
  most MAX_JSON_DEPTH deep (checked on the raw bytes, before the recursive parser runs);
- the name rules, called by the services that create or rename a named object, so the pages obey
  them too. MLflow's rules and texts where it has them (mlflow/utils/validation.py); stricter for
  names shown on pages and used in URLs: no control characters and no bidirectional overrides.
"""

import json
import posixpath
import re

from core.errors import InvalidParameter

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_JSON_DEPTH = 64

# NUL, and UTF-16 surrogates: json.loads pairs valid ones into one code point, so any left are unpaired.
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
# C0/C1 controls (newline, tab, ESC…), DEL, line/paragraph separators, bidi embeddings/overrides/isolates.
_NOT_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# MLflow's param/metric/tag key rule (validate_param_and_metric_name), matched in full: MLflow's
# `re.match(...$)` lets one trailing newline through.
_KEY = re.compile(r"[/\w.\- :]*")
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def shown(value, limit: int = 100) -> str:
    """A value as MLflow's invalid_value() shows it (JSON), cut short: escapes make invisible characters visible."""
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit] + "…"
    return json.dumps(value)


def invalid(path: str, value, message: str) -> InvalidParameter:
    # mlflow.utils.validation.invalid_value's text; a path (a JSON key) may itself be the bad text.
    if _BAD_TEXT.search(path):
        path = shown(path)[1:-1]
    return InvalidParameter(f"Invalid value {shown(value)} for parameter '{path}' supplied: {message}")


# --------------------------------------------------------------------------- the gate


def check_text(value: str, path: str) -> None:
    if _BAD_TEXT.search(value):
        raise invalid(path, value, "text may not contain NUL characters or unpaired surrogates.")


def check_int64(value: int, path: str) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise invalid(path, value, f"integers must be between {INT64_MIN} and {INT64_MAX} (64-bit).")
    return value


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays/objects nest deeper than `limit`, read from the bytes without recursion."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # the common case: a few brackets cannot nest deeper than their number
    depth = 0
    for byte in _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS):
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def loads_bounded(text: str | bytes):
    """json.loads for text from outside (bodies, query values, page tokens, tag values): ValueError when
    nested deeper than MAX_JSON_DEPTH, instead of the parser's RecursionError."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if json_too_deep(raw):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(text)


def parse_json_body(body: bytes) -> dict:
    """The request body as a JSON object: {} when empty (or null), 400 when malformed or not an object.

    MLflow reads an unparsable body as {}; we refuse it, so a garbled request never creates anything.
    A JSON string holding an object is read as that object (older clients double-encode, as MLflow allows).
    """
    if not body.strip():
        return {}
    try:
        data = loads_bounded(body)
        if isinstance(data, str):
            data = loads_bounded(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidParameter(f"Malformed JSON request body: {error}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidParameter(f"Malformed JSON request body: expected an object, got {type(data).__name__}.")
    check_json_values(data)
    return data


def check_json_values(data: dict) -> None:
    """Every key and string in the tree: no NUL/lone surrogate; every integer: int64. Iterative."""
    stack = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else key
                check_text(key, child)
                stack.append((item, child))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(value))
        elif isinstance(value, str):
            check_text(value, path)
        elif isinstance(value, int) and not isinstance(value, bool):
            check_int64(value, path)


def check_query(query, kwargs: dict) -> None:
    """Query-string keys/values and URL arguments: no NUL (Django decodes invalid UTF-8 to U+FFFD)."""
    for key, values in query.lists():
        check_text(key, key)
        for value in values:
            check_text(value, key)
    for key, value in kwargs.items():
        if isinstance(value, str):
            check_text(value, key)


# --------------------------------------------------------------------------- name rules


def check_display_name(name: str, path: str = "name") -> str:
    """A name shown on pages (models, experiments, runs, stages): no control or bidi-override characters.

    Stricter than MLflow, which accepts them: a newline broke the pages' URLs, and bidi overrides make
    one name look like another.
    """
    if _NOT_IN_NAMES.search(name):
        raise invalid(path, name, "names may not contain control characters (newline, tab, …) "
                                  "or bidirectional text overrides (U+202A-U+202E, U+2066-U+2069).")
    return name


def path_not_unique(name: str) -> bool:
    """MLflow's rule: a name that a file store would resolve to another name (`.`, `a/../b`, `/a`, `a//b`, `a/`)."""
    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith("..") or norm.startswith("/")


def bad_path_message(name: str) -> str:
    return ("Names may be treated as files in certain cases, and must not resolve to other names"
            f" when treated as such. This name would resolve to {posixpath.normpath(name)!r}")


def check_path_name(name: str, path: str = "name") -> str:
    if path_not_unique(name):
        raise invalid(path, name, bad_path_message(name))
    return name


def check_key(key: str, path: str = "key") -> str:
    """MLflow's rule for param, metric and tag keys (_validate_param_name / _validate_tag_name)."""
    if not _KEY.fullmatch(key):
        raise invalid(path, key, "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.),"
                                 " spaces ( ), colon(:) and slashes (/).")
    return check_path_name(key, path)
