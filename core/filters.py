"""MLflow's search filter and order_by grammar, parsed once for every search endpoint.

    filter   := clause (AND clause)*
    clause   := key comparator value
    key      := [prefix.]name | prefix.`quoted name` | prefix."quoted name"
    prefix   := metrics|metric|params|param|tags|tag|attributes|attribute|attr|run|datasets|dataset
    value    := 'string' | "string" | number | ( 'a', 'b', … )

Each app turns the parsed clauses into ORM filters (`tracking/search.py`,
`registry/search.py`); this module knows no models.
"""

import re
from dataclasses import dataclass

from core.errors import InvalidParameter

PREFIXES = {
    "metrics": "metric",
    "metric": "metric",
    "params": "parameter",
    "param": "parameter",
    "parameters": "parameter",
    "parameter": "parameter",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attribute",
    "attribute": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "datasets": "dataset",
    "dataset": "dataset",
}

COMPARATORS = ("=", "!=", "<", "<=", ">", ">=", "LIKE", "ILIKE", "IN", "NOT IN", "IS NULL", "IS NOT NULL")

_TOKEN = re.compile(
    r"""
    \s*(?:
      (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
    | (?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))(?![\w.])
    | (?P<list>\((?:[^()'"]|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")*\))
    | (?P<op><=|>=|!=|<>|=|<|>|~~|[~!^%&|]+)
    | (?P<key>(?:[A-Za-z_][\w]*\.)?(?:`[^`]*`|"[^"]*"|[A-Za-z_][\w.\-:/]*))
    )
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Clause:
    type: str  # metric | parameter | tag | attribute | dataset
    key: str
    comparator: str  # one of COMPARATORS, upper-case
    value: object  # str | float | list[str] | None


@dataclass(frozen=True)
class OrderKey:
    type: str
    key: str
    ascending: bool


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"`":
        inner = text[1:-1]
        if text[0] == "'":
            inner = inner.replace("''", "'")
        return re.sub(r"\\(.)", r"\1", inner)
    return text


def parse_key(text: str, *, default_type: str = "attribute") -> tuple[str, str]:
    """`metrics.rmse` -> ("metric", "rmse"); `tag.`a.b`` -> ("tag", "a.b"); `name` -> (default_type, "name")."""
    text = text.strip()
    match = re.match(r"^([A-Za-z_]\w*)\.(.+)$", text)
    if match and match.group(1).lower() in PREFIXES:
        return PREFIXES[match.group(1).lower()], _unquote(match.group(2).strip())
    return default_type, _unquote(text)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise InvalidParameter(f"Invalid filter string: could not parse '{text[pos:].strip()}'")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


def _split_and(tokens: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    clauses, current = [], []
    for kind, value in tokens:
        if kind == "key" and value.upper() == "AND":
            clauses.append(current)
            current = []
        else:
            current.append((kind, value))
    clauses.append(current)
    return clauses


def _parse_list(text: str) -> list[str]:
    inner = text.strip()[1:-1]
    items = []
    for match in re.finditer(r"""\s*('(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*"|[^,\s]+)\s*(,|$)""", inner):
        items.append(_unquote(match.group(1)))
    if not items and inner.strip():
        raise InvalidParameter(f"While parsing a list in the query, expected string value, got '{inner}'")
    return items


def parse_filter(text: str | None, *, default_type: str = "attribute") -> list[Clause]:
    if not text or not text.strip():
        return []
    clauses = []
    for parts in _split_and(_tokens(text)):
        if not parts:
            raise InvalidParameter(f"Invalid filter string '{text}': empty clause around AND")
        words = [value for _, value in parts]
        if parts[0][0] != "key":
            raise InvalidParameter(f"Invalid clause(s) in filter string: {', '.join(words)}")
        ctype, key = parse_key(parts[0][1], default_type=default_type)
        rest = parts[1:]
        upper = [value.upper() for _, value in rest]
        if upper[:3] == ["IS", "NOT", "NULL"] and len(rest) == 3:
            clauses.append(Clause(ctype, key, "IS NOT NULL", None))
            continue
        if upper[:2] == ["IS", "NULL"] and len(rest) == 2:
            clauses.append(Clause(ctype, key, "IS NULL", None))
            continue
        if upper[:2] == ["NOT", "IN"]:
            comparator, rest = "NOT IN", rest[2:]
        elif rest and rest[0][0] in ("op", "key"):
            comparator, rest = rest[0][1].upper(), rest[1:]
            if comparator == "<>":
                comparator = "!="
        else:
            raise InvalidParameter(f"Invalid clause(s) in filter string: {', '.join(words)}")
        if comparator not in COMPARATORS:
            raise InvalidParameter(f"Invalid comparator for {ctype}: {comparator.lower() if comparator.isalpha() else comparator}")
        if len(rest) != 1:
            raise InvalidParameter(f"Invalid clause(s) in filter string: {', '.join(words)}")
        kind, raw = rest[0]
        if comparator in ("IN", "NOT IN"):
            if kind != "list":
                raise InvalidParameter(f"Expected a quoted string value for {comparator} (e.g. ('a', 'b')), got {raw}")
            value = _parse_list(raw)
        elif kind == "string":
            value = _unquote(raw)
        elif kind == "number":
            value = float(raw)
        elif kind == "list":
            raise InvalidParameter(f"Comparator {comparator} does not take a list, got {raw}")
        else:
            raise InvalidParameter(
                f"Expected a quoted string value for {ctype} '{key}' (e.g. '{raw}'), got {raw}"
            )
        clauses.append(Clause(ctype, key, comparator, value))
    return clauses


def parse_order_by(items: list[str], *, default_type: str = "attribute") -> list[OrderKey]:
    keys = []
    for item in items:
        text = item.strip()
        if not text:
            continue
        ascending = True
        match = re.match(r"^(.*?)\s+(ASC|DESC)$", text, re.IGNORECASE)
        if match:
            text, ascending = match.group(1).strip(), match.group(2).upper() == "ASC"
        if not text or re.search(r"\s", text.replace(" ", "")) is not None:
            raise InvalidParameter(f"Invalid order_by clause '{item}'")
        ctype, key = parse_key(text, default_type=default_type)
        # An unquoted name with a space ("metrics.rmse SIDEWAYS") is a bad direction, not a key.
        prefixed = re.match(r"^([A-Za-z_]\w*)\.(.+)$", text)
        name = prefixed.group(2).strip() if prefixed and prefixed.group(1).lower() in PREFIXES else text
        if not key or (re.search(r"\s", key) and not name.startswith(("`", '"'))):
            raise InvalidParameter(f"Invalid order_by clause '{item}'")
        keys.append(OrderKey(ctype, key, ascending))
    return keys


def like_to_regex(pattern: str) -> str:
    """SQL LIKE pattern (% and _) as a Python regex, for checks outside the database."""
    out = []
    for ch in pattern:
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "^" + "".join(out) + "$"
