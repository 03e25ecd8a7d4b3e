"""The apps depend one way: core <- tracking <- registry <- approvals <- monitoring.

A lower app never imports a higher one, not even lazily inside a function: where the registry needs
governance (a transition guard, a page's panels) it calls a hook that the higher app fills in its
AppConfig.ready(). This test reads every import statement of the project's Python files.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["core", "tracking", "registry", "approvals", "monitoring"]


def _imported_apps(path: Path) -> set[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in LAYERS:
                found.add((top, node.lineno))
    return found


def violations() -> list[str]:
    out = []
    for rank, app in enumerate(LAYERS):
        higher = set(LAYERS[rank + 1:])
        for path in sorted((ROOT / app).rglob("*.py")):
            for top, line in sorted(_imported_apps(path)):
                if top in higher:
                    out.append(f"{path.relative_to(ROOT)}:{line} imports {top} (a higher layer than {app})")
    return out


def test_no_app_imports_a_higher_one():
    assert violations() == []


def test_the_reader_sees_lazy_imports(tmp_path):
    """The check itself: an import inside a function body counts as much as one at the top."""
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    from approvals import policy\n    import monitoring.services\n")
    assert _imported_apps(sample) == {("approvals", 2), ("monitoring", 3)}
