"""The examples end to end: the ring (`xlreg up --size 3 -- python
examples/python/ring.py`, each member receiving its predecessor's message
over the encrypted channel) and the cluster client (reading the members
and calling a Rust member, `xlreg peer listen --anonymous`)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import List

import socket
import sys

import pytest

import xlreg
from xlreg.testing import LocalRegistry


def test_the_ring_example_passes_a_message_around_three_members(
    repo: Path, xlreg_cmd: List[str], cli_env: dict
) -> None:
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


def test_the_cluster_client_example_calls_a_rust_member_anonymously(
    repo: Path, xlreg_cmd: List[str], cli_env: dict, xlreg_registry: LocalRegistry
) -> None:
    xlreg.create_cluster(xlreg_registry.regcred, "cc", 2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = str(xlreg_registry.regcred_path)
    rust = subprocess.Popen(
        [*xlreg_cmd, "peer", "listen", "--regcred", rc, "--cluster", "cc", "--name", "rust",
         "--endpoint", f"127.0.0.1:{port}", "--key-bits", "1024", "--anonymous",
         "--count", "1", "--listen-for", "60"],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        other = xlreg.Node.generate(name="py", endpoints=["127.0.0.1:1"], key_bits=1024)
        view = xlreg.boot(xlreg_registry.regcred, other, "cc", wait=30)
        rust_index = next(m.index for m in view.members if m.name == "rust")
        client = subprocess.run(
            [sys.executable, "examples/python/cluster_client.py", rc, "cc", str(rust_index),
             "what time is it?"],
            cwd=repo, env=cli_env, capture_output=True, text=True, timeout=60,
        )
        assert client.returncode == 0, client.stderr
        assert f"to member {rust_index} (rust)" in client.stdout
        out, err = rust.communicate(timeout=30)
    finally:
        rust.kill()
        rust.wait()
    assert rust.returncode == 0, err
    assert "an anonymous client" in out and "what time is it?" in out, out
