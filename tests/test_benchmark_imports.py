"""Every project name a benchmark imports exists: benchmarks are not collected by pytest, so a rename in `icm_rm` or
`rl` would otherwise break them silently (as `infra.lm.load_model` once did)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("icm_rm", "rl")
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))


def _project_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name or None) for every `icm_rm`/`rl` import in the file, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in PROJECT:
                out += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, None) for a in node.names if a.name.split(".")[0] in PROJECT]
    return out


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_project_imports_resolve(path: Path) -> None:
    missing = []
    for line, module, name in _project_imports(path):
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            missing.append(f"{path.name}:{line}: {module} ({exc})")
            continue
        if name is None or name == "*" or hasattr(mod, name):
            continue
        try:
            importlib.import_module(f"{module}.{name}")
        except ImportError:
            missing.append(f"{path.name}:{line}: {module} has no {name}")
    assert not missing, "\n".join(missing)


def test_finds_imports_in_function_bodies(tmp_path: Path) -> None:
    script = tmp_path / "bench.py"
    script.write_text("import json\nfrom icm_rm.infra.io import atomic_write\n"
                      "def f():\n    from rl.launch import nothing_here\n")
    assert _project_imports(script) == [(2, "icm_rm.infra.io", "atomic_write"), (4, "rl.launch", "nothing_here")]
