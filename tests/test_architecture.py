"""The shape rules of docs/architecture.md, read from the source with `ast`: imports run one way between the parts,
`rl` uses only a small public surface of `icm_rm`, no private name crosses a package, no import cycle, project
imports sit at module level, and no module or function outgrows its limit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# part → the parts it may import (itself included). `cli` names the stage modules as strings only.
ALLOWED = {
    "icm_rm": set(),
    "icm_rm.infra": {"icm_rm", "icm_rm.infra"},
    "icm_rm.data": {"icm_rm.infra", "icm_rm.data"},
    "icm_rm.scoring": {"icm_rm.infra", "icm_rm.data", "icm_rm.scoring"},
    "icm_rm.label": {"icm_rm.infra", "icm_rm.data", "icm_rm.scoring", "icm_rm.label"},
    "icm_rm.reward": {"icm_rm.infra", "icm_rm.data", "icm_rm.reward"},
    "rl": {"icm_rm.infra", "icm_rm.data", "icm_rm.reward", "rl"},
    "icm_rm.cli": {"icm_rm.infra"},
    "icm_rm.pipeline": {"icm_rm.infra", "icm_rm.data", "icm_rm.label", "icm_rm.reward", "rl", "icm_rm.pipeline"},
}
# The whole of icm_rm that rl may use: infrastructure, the reward-model contract, records and built-in prompts.
RL_SURFACE = {
    "icm_rm.infra.config", "icm_rm.infra.device", "icm_rm.infra.errors", "icm_rm.infra.files", "icm_rm.infra.io",
    "icm_rm.infra.lm", "icm_rm.infra.model_dir", "icm_rm.infra.model_registry", "icm_rm.infra.models",
    "icm_rm.infra.quiet", "icm_rm.infra.runner", "icm_rm.infra.runs", "icm_rm.infra.values",
    "icm_rm.reward.data", "icm_rm.reward.scoring", "icm_rm.reward.stats",
    "icm_rm.data.builtin", "icm_rm.data.generic", "icm_rm.data.readers", "icm_rm.data.records",
}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in ("icm_rm", "rl"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def part(module: str) -> str:
    """The part a module belongs to (the keys of ALLOWED)."""
    for p in sorted(ALLOWED, key=len, reverse=True):
        if module == p or module.startswith(p + "."):
            return p
    raise AssertionError(f"{module} belongs to no part of the architecture; add it to ALLOWED")


def package(module: str) -> str:
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str):
    """(imported module, imported name or None, line, inside a function) for every project import of `module`."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    here = package(module)
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for n in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("icm_rm", "rl"):
                    yield alias.name, None, node.lineno, id(node) in in_function
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if base.split(".")[0] not in ("icm_rm", "rl"):
                continue
            for alias in node.names:
                sub = _module_named(module, node, alias.name)
                if sub:  # `from pkg import module`
                    yield sub, None, node.lineno, id(node) in in_function
                else:
                    yield base, alias.name, node.lineno, id(node) in in_function


def _module_named(module: str, node: ast.ImportFrom, name: str) -> str | None:
    """The module `from … import name` binds, when `name` is a module."""
    base = node.module or ""
    if node.level:
        here = package(module).split(".")
        base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
    sub = f"{base}.{name}"
    return sub if sub in MODULES else None


EDGES = {m: list(_imports(m)) for m in MODULES}


def test_every_module_belongs_to_a_part():
    for m in MODULES:
        part(m)


def test_imports_run_one_way():
    bad = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {target} ({part(m)} → {part(target)})"
           for m, edges in EDGES.items() for target, _, line, _ in edges if part(target) not in ALLOWED[part(m)]]
    assert not bad, "back edges:\n" + "\n".join(bad)


def test_rl_uses_only_the_public_surface_of_icm_rm():
    bad = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {target}" for m, edges in EDGES.items() if part(m) == "rl"
           for target, _, line, _ in edges if target.startswith("icm_rm") and target not in RL_SURFACE]
    assert not bad, "rl reaches past icm_rm's public surface:\n" + "\n".join(bad)


def test_no_private_name_crosses_a_package():
    bad = []
    for m, edges in EDGES.items():
        for target, name, line, _ in edges:
            if name and name.startswith("_") and not name.startswith("__") and package(target) != package(m):
                bad.append(f"{MODULES[m].relative_to(ROOT)}:{line} imports {target}.{name}")
        tree = ast.parse(MODULES[m].read_text(encoding="utf-8"))
        foreign = {node.asname or node.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                   for node in n.names if any(t == _module_named(m, n, node.name) and package(t) != package(m)
                                              for t, _, _, _ in EDGES[m])}
        for node in ast.walk(tree):  # `module._private` through a module imported from another package
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in foreign
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{MODULES[m].relative_to(ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not bad, "private names used across packages:\n" + "\n".join(bad)


def test_no_import_cycle():
    graph = {m: {t for t, _, _, _ in edges if t in MODULES and t != m} for m, edges in EDGES.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycle = path[path.index(t):] + [t] if t in path else [m, t]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_project_imports_sit_at_module_level():
    inner = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {target}" for m, edges in EDGES.items()
             for target, _, line, in_function in edges if in_function]
    assert not inner, "project imports inside functions hide the graph:\n" + "\n".join(inner)


def test_the_checks_see_real_edges():
    """The walk itself works: known edges are found, and a back edge would be reported."""
    assert any(t == "icm_rm.scoring.registry" for t, *_ in EDGES["icm_rm.label.config"])
    assert any(t == "rl.grpo" for t, *_ in EDGES["icm_rm.pipeline.stages"])
    assert "rl" not in ALLOWED[part("icm_rm.label.stage")] and part("rl.ppo.trainer") == "rl"
    assert package("icm_rm.label") == "icm_rm.label" and package("icm_rm.label.stage") == "icm_rm.label"


def test_modules_and_functions_stay_small():
    big, long = [], []
    for m, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            big.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    assert not big and not long, "\n".join(big + long)
