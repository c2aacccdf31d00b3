"""A short script that ends with ``asyncio.run(xlreg.aio...)`` exits cleanly.

Regression (issue 18): the runtime thread that resolved the last asyncio
future could still be inside Python when the interpreter finalised, and the
process died with SIGSEGV or "Fatal Python error: PyGILState_Release" (4 of
10 runs of the first script under ``xlreg up --size 2`` before the fix).
Each script runs in its own interpreter, a bounded number of times.
"""

from __future__ import annotations

import subprocess
import sys
from typing import List

RUNS = 12
IN_PROCESS_RUNS = 8  # each starts a registry (key generation: ~2 s)

BOOT_UP_MEMBER = (
    "import asyncio, xlreg\n"
    "v = asyncio.run(xlreg.aio.boot_env(xlreg.UpEnv.from_env(), wait=30))\n"
    "print('booted', v.self_index, len(v.members), flush=True)\n"
)

# Completions still in flight when the loop closes and the interpreter
# exits: 40 reads are started, the loop returns after the first finishes.
EXIT_WITH_CALLS_IN_FLIGHT = (
    "import asyncio, xlreg, xlreg.testing\n"
    "reg = xlreg.testing.LocalRegistry()\n"
    "xlreg.create_cluster(reg.regcred, 'c', 2)\n"
    "async def main():\n"
    "    ts = [asyncio.ensure_future(xlreg.aio.read_members(reg.regcred, 'c')) for _ in range(40)]\n"
    "    done, _ = await asyncio.wait(ts, return_when=asyncio.FIRST_COMPLETED)\n"
    "    return len(done)\n"
    "print('done', asyncio.run(main()) >= 1, flush=True)\n"
)


def test_an_up_member_ending_with_asyncio_run_exits_cleanly_every_time(
    xlreg_cmd: List[str], cli_env: dict
) -> None:
    for run in range(RUNS):
        p = subprocess.run(
            [*xlreg_cmd, "up", "--size", "2", "--key-bits", "1024", "--",
             sys.executable, "-c", BOOT_UP_MEMBER],
            env=cli_env, capture_output=True, text=True, timeout=120,
        )
        out = p.stdout + p.stderr
        assert p.returncode == 0, f"run {run}: exit {p.returncode}\n{out}"
        assert out.count("booted") == 2, f"run {run}:\n{out}"
        assert "Fatal Python error" not in out, f"run {run}:\n{out}"


def test_exiting_with_asyncio_calls_in_flight_exits_cleanly_every_time(cli_env: dict) -> None:
    for run in range(IN_PROCESS_RUNS):
        p = subprocess.run(
            [sys.executable, "-X", "faulthandler", "-c", EXIT_WITH_CALLS_IN_FLIGHT],
            env=cli_env, capture_output=True, text=True, timeout=120,
        )
        assert p.returncode == 0, f"run {run}: exit {p.returncode}\n{p.stdout}{p.stderr}"
        assert p.stdout.strip() == "done True", f"run {run}:\n{p.stdout}{p.stderr}"
