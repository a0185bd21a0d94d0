"""Named failpoints (precompute/core/failpoints.py): the registry matches the calls in the code, a set variable
kills the process at exactly the pass it names, an unset one does nothing, a misspelt one is refused."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from precompute.core import failpoints
from precompute.core.failpoints import ENV, LOG_ENV, POINTS, FailpointError, parse

ROOT = Path(__file__).resolve().parents[2]


def calls_in_code() -> dict[str, list[str]]:
    """failpoint("NAME") calls in the project's code: NAME -> where (file:line)."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "precompute").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "failpoint":
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                assert len(node.args) == 1 and isinstance(node.args[0], ast.Constant), (
                    f"{where}: failpoint() takes one literal name, so that this test can see it"
                )
                found.setdefault(node.args[0].value, []).append(where)
    return found


def test_every_call_names_a_registered_failpoint_and_every_failpoint_is_called():
    calls = calls_in_code()
    assert sorted(set(calls) - set(POINTS)) == [], "failpoint() calls whose name is not in POINTS"
    assert sorted(set(POINTS) - set(calls)) == [], "POINTS entries that no code calls"
    assert all(name.count(".") == 1 and name == name.lower() for name in POINTS)  # area.moment
    assert all(desc and len(desc) < 140 for desc in POINTS.values())


def test_the_variable_names_a_failpoint_and_optionally_its_pass():
    assert parse("publish.renamed") == ("publish.renamed", 1)
    assert parse(" step.committed@3 ") == ("step.committed", 3)
    with pytest.raises(FailpointError, match=r"no failpoint is named 'publish\.after_copy'.*publish\.mid_copy"):
        parse("publish.after_copy")
    for bad in ("step.begun@0", "step.begun@x", "step.begun@-1", "step.begun@"):
        with pytest.raises(FailpointError, match="whole number"):
            parse(bad)


def test_unset_failpoints_do_nothing(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv(LOG_ENV, raising=False)
    assert failpoints._from_environment() is None
    monkeypatch.setattr(failpoints, "_armed", None)
    failpoints.failpoint("step.begun")  # one comparison with None, then back
    failpoints.check_environment()


def test_an_armed_process_refuses_a_name_missing_from_the_registry():
    armed = failpoints._Armed("step.begun@2", "")
    armed.hit("step.begun")  # the first pass: not yet
    with pytest.raises(FailpointError, match="not listed"):
        armed.hit("step.begun_typo")
    broken = failpoints._Armed("nope", "")
    with pytest.raises(FailpointError, match="no failpoint is named 'nope'"):
        broken.hit("step.begun")


def test_the_named_pass_kills_the_process_with_sigkill_and_the_log_says_where(tmp_path):
    log = tmp_path / "passes.log"
    script = textwrap.dedent("""
        from precompute.core.failpoints import failpoint
        failpoint("lock.acquired")
        print("first pass", flush=True)
        failpoint("step.begun")
        print("second pass", flush=True)
        failpoint("step.begun")
        print("after the kill")
    """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, ENV: "step.begun@2", LOG_ENV: str(log)},
    )
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split("\n")[:2] == ["first pass", "second pass"] and "after the kill" not in done.stdout
    assert "failpoint step.begun@2: SIGKILL" in done.stderr
    assert log.read_text().split() == ["lock.acquired", "step.begun", "step.begun"]


def test_the_command_line_refuses_an_unknown_failpoint_before_doing_anything(tmp_path):
    db = tmp_path / "data" / "unitscope.duckdb"
    done = subprocess.run(
        [sys.executable, "-m", "precompute", "--db", str(db), "datasets", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, ENV: "publish.after_copy", "UNITSCOPE_DATA": str(tmp_path / "data")},
    )
    assert done.returncode == 2, done.stderr
    assert "error: UNITSCOPE_FAILPOINT='publish.after_copy': no failpoint is named" in done.stderr
    assert "Traceback" not in done.stderr and not db.parent.exists()
