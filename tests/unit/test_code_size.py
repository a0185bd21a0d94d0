"""Size limits a reader can rely on: no file over 450 lines, no function over 80 lines (benchmarks aside).

A function may exceed 80 lines only with a reason: a comment starting `# long:` on the line of its `def`
or the line above it. Ruff holds the complexity and argument-count limits (pyproject.toml).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ["app.py", "routes.py", "precompute", "backend", "pages", "components", "deploy", "scripts", "tests"]
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 80


def _files() -> list[Path]:
    out = []
    for name in CHECKED:
        path = ROOT / name
        out += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return out


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(name, lines) of every function longer than `limit` lines without a `# long:` reason."""
    lines = source.splitlines()
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            reason = any("# long:" in lines[i - 1] for i in {first - 1, node.lineno} if 0 < i <= len(lines))
            if length > limit and not reason:
                out.append((node.name, length))
    return out


def test_no_file_is_over_the_limit():
    big = [
        f"{p.relative_to(ROOT)}: {n} lines" for p in _files() if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    ]
    assert not big, "split these along their seams:\n" + "\n".join(big)


def test_no_function_is_over_the_limit_without_a_reason():
    long = [f"{p.relative_to(ROOT)}: {name} ({n} lines)" for p in _files() for name, n in long_functions(p.read_text())]
    assert not long, "split these along their seams (or say why not with `# long:`):\n" + "\n".join(long)


def test_the_function_check_counts_lines_and_honours_a_reason():
    body = "".join(f"    x = {i}\n" for i in range(90))
    assert long_functions("def f():\n" + body) == [("f", 91)]
    assert long_functions("# long: one table per branch, read top to bottom\ndef f():\n" + body) == []
    assert long_functions("def f():\n" + body[: 10 * 12]) == []
