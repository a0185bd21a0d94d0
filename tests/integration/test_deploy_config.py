"""The container definitions and entry points, checked without a Docker engine: the compose file (parsed,
and `docker compose config` where the client has it), the Dockerfile, .env.sample, gunicorn's settings, and
the two entry scripts run for real on loopback data."""

from __future__ import annotations

import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploy.faults import read_build, write_folder_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_services(compose):
    services = compose["services"]
    # the default services; the Dask scheduler and workers only start with `--profile cluster`
    assert {k for k, v in services.items() if "profiles" not in v} == {"precompute", "app", "redis"}
    cluster = {k for k, v in services.items() if "cluster" in v.get("profiles", [])}
    assert cluster and cluster == set(services) - {"precompute", "app", "redis"}
    app, job = services["app"], services["precompute"]
    assert app["command"] == ["bash", "deploy/app.sh"] and job["command"] == ["bash", "deploy/precompute.sh"]
    assert job["restart"] == "no"  # one-shot
    # the app mounts the data FOLDER read-only (atomic replacements of the file inside are seen)
    assert "unitscope-data:/data:ro" in app["volumes"]
    assert any(v.startswith("unitscope-data:/data") and not v.endswith(":ro") for v in job["volumes"])
    assert app["environment"]["UNITSCOPE_CACHE"] == "redis"
    assert app["environment"]["UNITSCOPE_REDIS_URL"].startswith("redis://redis:")
    assert app["depends_on"]["redis"]["condition"] == "service_healthy"
    assert app["ports"][0].startswith("${UNITSCOPE_PUBLISH:-127.0.0.1:")  # loopback unless the lab opens it
    assert "deploy/healthcheck.py" in app["healthcheck"]["test"]


def test_every_compose_variable_is_in_env_sample():
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))
    sample = (ROOT / ".env.sample").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", sample, flags=re.M))
    assert used - documented == set()


@pytest.mark.skipif(
    shutil.which("docker") is None and shutil.which("docker-compose") is None, reason="no docker client"
)
def test_docker_compose_config(tmp_path):
    """`docker compose config` (or the v1 `docker-compose config`) validates and interpolates the file."""
    env = {**os.environ, "UNITSCOPE_AUTH_USER": "lab", "UNITSCOPE_AUTH_PASSWORD": "pw"}
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if (
            shutil.which(cmd[0]) is None
            or subprocess.run([*cmd, "version"], capture_output=True, timeout=60).returncode != 0
        ):
            continue  # e.g. a docker client without the compose plugin
        done = subprocess.run(
            [*cmd, "-f", str(ROOT / "docker-compose.yml"), "config"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        config = yaml.safe_load(done.stdout)
        assert config["services"]["app"]["environment"]["UNITSCOPE_AUTH_USER"] == "lab"
        return
    pytest.skip("the docker client has no compose command")


def test_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11[\w.]*-slim", text, re.M)
    assert "-r requirements.txt -c constraints.txt" in text
    assert re.search(r"^USER unitscope$", text, re.M)
    assert "HEALTHCHECK" in text and "deploy/healthcheck.py" in text
    assert "chromium" in text
    assert "shared" not in text  # builds from the repository alone
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "data", ".env"} <= set(ignored)


def test_gunicorn_settings_from_environment(monkeypatch):
    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    monkeypatch.setenv("GUNICORN_THREADS", "6")
    monkeypatch.setenv("UNITSCOPE_HOST", "0.0.0.0")
    monkeypatch.setenv("UNITSCOPE_PORT", "9000")
    conf = runpy.run_path(str(ROOT / "deploy" / "gunicorn_conf.py"))
    assert (conf["workers"], conf["threads"], conf["bind"], conf["worker_class"]) == (3, 6, "0.0.0.0:9000", "gthread")
    assert conf["preload_app"] is False
    monkeypatch.setenv("GUNICORN_WORKERS", "many")
    with pytest.raises(SystemExit, match="GUNICORN_WORKERS"):
        runpy.run_path(str(ROOT / "deploy" / "gunicorn_conf.py"))


def test_precompute_entry_point_runs_the_lab_batch_folder(tmp_path):
    """deploy/precompute.sh with the demo off runs every *.toml of the mounted lab folder."""
    lab = tmp_path / "lab"
    write_folder_dataset(lab / "recordings", n_stimuli=24, n_sites=4)
    (lab / "10-import.toml").write_text('[[import]]\nname = "lab-v4"\nformat = "folder"\npath = "recordings"\n')
    (lab / "notes.txt").write_text("not a batch file")
    data = tmp_path / "data"
    env = {
        **os.environ,
        "UNITSCOPE_DATA": str(data),
        "UNITSCOPE_DEMO": "off",
        "UNITSCOPE_BATCH": str(lab),
        "PYTHON": sys.executable,
    }
    env.pop("UNITSCOPE_DB", None)
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "precompute.sh")], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "dataset:lab-v4" in read_build(data / "unitscope.duckdb")[1]
    again = subprocess.run(
        ["bash", str(ROOT / "deploy" / "precompute.sh")], env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and "exists; skipping" in again.stderr  # a restart redoes nothing
    bad = subprocess.run(
        ["bash", str(ROOT / "deploy" / "precompute.sh")],
        env={**env, "UNITSCOPE_DEMO": "huge"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "use default, quick, full or off" in bad.stderr


def test_app_entry_point_waits_for_the_first_publish(tmp_path):
    """deploy/app.sh waits for the served file, starts the server once it is published, and gives up
    after UNITSCOPE_WAIT_S. Its messages are the verdict, never how long it took (a shared machine)."""
    env = {**os.environ, "UNITSCOPE_DATA": str(tmp_path), "UNITSCOPE_WAIT_S": "2", "PYTHON": sys.executable}
    env.pop("UNITSCOPE_DB", None)
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "app.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "no database at" in done.stderr and "after 2 s" in done.stderr
    # waiting for ever (the default): the file appears, the server starts (here `echo` stands in for python)
    env = {**env, "UNITSCOPE_WAIT_S": "0", "PYTHON": "echo"}
    proc = subprocess.Popen(
        ["bash", str(ROOT / "deploy" / "app.sh")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert "waiting for the first publish" in proc.stderr.readline()  # blocks until it says so
        (tmp_path / "unitscope.duckdb").write_bytes(b"")  # the script only looks for the file
        out, err = proc.communicate(timeout=120)  # bounds the wait only
    finally:
        proc.kill()
    assert proc.returncode == 0 and "published after" in err
    assert out.split() == ["-m", "gunicorn", "-c", "deploy/gunicorn_conf.py", "app:server"]
