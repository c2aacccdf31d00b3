"""Shared fixtures of the xlreg Python tests.

With ``XLREG_PYTHON_NO_SKIP=1`` (set by ``.ci/python.sh`` and
``scripts/test-python``) a skipped test is reported as a failure, so a
missing prerequisite (test vectors, ``cryptography``) cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest

import xlreg

REPO = Path(__file__).resolve().parents[2]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("XLREG_PYTHON_NO_SKIP") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped, but XLREG_PYTHON_NO_SKIP=1 forbids skips: {report.longrepr}"


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """The reference test vectors: ``$XLREG_VECTORS`` or ``<repo>/../shared/spec/testdata``."""
    env = os.environ.get("XLREG_VECTORS")
    d = Path(env) if env else REPO.parent / "shared" / "spec" / "testdata"
    if not d.is_dir():
        pytest.skip(f"reference vectors not found at {d}; set XLREG_VECTORS")
    return d


@pytest.fixture(scope="session")
def xlreg_cmd() -> List[str]:
    """The wheel's ``xlreg`` console script (next to this interpreter)."""
    bindir = Path(sys.executable).parent
    exe = bindir / "xlreg"
    if not exe.exists():
        found = shutil.which("xlreg")
        assert found, f"the xlreg console script is not installed in {bindir}"
        exe = Path(found)
    return [str(exe)]


@pytest.fixture(scope="session")
def cli_env(xlreg_key_pool: Path) -> dict:
    """Environment for CLI runs: quiet logs, this interpreter's bin dir
    first on PATH, the shared key pool."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["XLREG_KEY_POOL"] = str(xlreg_key_pool)
    env["XLREG_LOG"] = "warn"
    return env


def run_cli(cmd: List[str], env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``xlreg ARGS`` and return the finished process (text output)."""
    return subprocess.run(
        [*cmd, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def serve(tmp_path: Path, xlreg_cmd: List[str], cli_env: dict) -> Iterator[Path]:
    """An ``xlreg serve`` process (ephemeral, 1024-bit key, free port);
    yields its regCred.dat path and stops the process afterwards."""
    rc = tmp_path / "serve" / "regCred.dat"
    rc.parent.mkdir()
    p = subprocess.Popen(
        [
            *xlreg_cmd,
            "serve",
            "--ephemeral",
            "--key-bits",
            "1024",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path / "serve" / "data"),
            "--regcred",
            str(rc),
        ],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if rc.exists():
                try:
                    xlreg.RegCred.load(rc)
                    break
                except xlreg.RegCredError:
                    pass  # being written
            if p.poll() is not None:
                raise AssertionError(f"xlreg serve exited with {p.returncode}: {p.stderr.read()}")
            if time.monotonic() > deadline:
                raise AssertionError("xlreg serve wrote no regCred.dat within 30 s")
            time.sleep(0.02)
        yield rc
    finally:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if p.stderr:
            p.stderr.close()
