"""The `xlreg` command installed by the wheel: the Rust CLI embedded in the
extension, usable with no Rust toolchain on PATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import xlreg
from xlreg import _xlreg


def test_the_console_script_prints_the_version(xlreg_cmd: List[str], cli_env: dict) -> None:
    p = subprocess.run([*xlreg_cmd, "--version"], env=cli_env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    assert p.stdout.strip() == f"xlreg {xlreg.__version__}"


def test_up_size_5_runs_without_a_rust_toolchain(xlreg_cmd: List[str], cli_env: dict) -> None:
    env = dict(cli_env)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    assert shutil.which("cargo", path=env["PATH"]) is None
    assert shutil.which("rustc", path=env["PATH"]) is None
    p = subprocess.run(
        [*xlreg_cmd, "up", "--size", "5", "--key-bits", "1024", "--json"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["max_size"] == 5 and len(doc["members"]) == 5


def test_python_dash_m_xlreg_runs_the_same_command(cli_env: dict) -> None:
    p = subprocess.run([sys.executable, "-m", "xlreg", "up", "--help"], env=cli_env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    assert "--size" in p.stdout


def test_bad_arguments_return_2_in_process_without_exiting_python(capfd) -> None:  # type: ignore[no-untyped-def]
    assert _xlreg.cli_main(["xlreg", "up", "--size", "1"]) == 2
    assert _xlreg.cli_main(["xlreg", "--no-such-flag"]) == 2
    err = capfd.readouterr().err
    assert "--no-such-flag" in err
    assert _xlreg.cli_main(["xlreg", "cred", "--help"]) == 0
