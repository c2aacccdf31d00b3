"""`xlreg up --listen-fds -- python PROGRAM`: a member that binds nothing
gets its endpoint sockets already listening (systemd socket activation) from
`UpEnv.take_listeners()`, and its `member_index` is its slot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

PROGRAM = r'''
import socket, sys
import xlreg

env = xlreg.UpEnv.from_env()
ls = xlreg.UpEnv.take_listeners()
assert ls is not None and len(ls) == len(env.endpoints), ls
assert xlreg.UpEnv.take_listeners() is None  # taken once
host, port = env.endpoints[0].rsplit(":", 1)
assert ls[0].getsockname() == (host, int(port)), (ls[0].getsockname(), env.endpoints)
view = env.boot(wait=30)
# The inherited socket works: connect to our own endpoint and accept.
c = socket.create_connection((host, int(port)), timeout=5)
s, _ = ls[0].accept()
s.sendall(b"hello")
assert c.recv(5) == b"hello"
print(f"listener-ok {env.member_name} index={env.member_index} slot={view.self_index}", flush=True)
'''


def test_a_member_that_binds_nothing_gets_working_listeners_and_its_slot_as_index(
    xlreg_cmd: List[str], cli_env: dict, tmp_path: Path
) -> None:
    prog = tmp_path / "member.py"
    prog.write_text(PROGRAM)
    p = subprocess.run(
        [*xlreg_cmd, "up", "--size", "3", "--key-bits", "1024", "--listen-fds", "--",
         sys.executable, str(prog)],
        env=cli_env, capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 0, p.stderr
    for i in range(3):
        line = f"[m0{i}] listener-ok m0{i} index={i} slot={i}"
        assert line in p.stderr, p.stderr
