"""The ring example end to end: `xlreg up --size 3 -- python
examples/python/ring.py`, each member decrypting what its neighbour
encrypted to its comms key."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import List

import pytest


def test_the_ring_example_passes_a_secret_around_three_members(
    repo: Path, xlreg_cmd: List[str], cli_env: dict
) -> None:
    pytest.importorskip("cryptography")
    # PATH without this virtualenv, as for a user who did not activate it:
    # the `xlreg` script itself puts its interpreter first for the members.
    env = dict(cli_env, PATH=os.pathsep.join(["/usr/bin", "/bin"]))
    p = subprocess.run(
        [*xlreg_cmd, "up", "--size", "3", "--key-bits", "1024", "--",
         "python", "examples/python/ring.py"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, p.stderr
    got = re.findall(r"\[(m\d\d)\] (m\d\d) \(index (\d)\): received 'ring message from (m\d\d) to (m\d\d)'", p.stderr)
    assert len(got) == 3, p.stderr
    for prefix, me, _index, _sender, receiver in got:
        assert prefix == me == receiver
    assert {g[3] for g in got} == {"m00", "m01", "m02"}


def test_a_ring_member_that_fails_makes_up_fail(
    repo: Path, xlreg_cmd: List[str], cli_env: dict, tmp_path: Path
) -> None:
    # The same program with the decryption check inverted fails on every member.
    src = (repo / "examples/python/ring.py").read_text()
    broken = tmp_path / "broken_ring.py"
    broken.write_text(src.replace("if got != want:", "if got == want:"))
    p = subprocess.run(
        [*xlreg_cmd, "up", "--size", "2", "--key-bits", "1024", "--", "python", str(broken)],
        cwd=repo, env=cli_env, capture_output=True, text=True, timeout=120,
    )
    assert p.returncode != 0
    assert "expected b'ring message from" in p.stderr
