"""The library's log records reach Python's ``logging`` under ``xlreg``
(issue 18 §4): Rust target ``xlreg::server::connection`` is the logger
``xlreg.server.connection``; records logged on runtime threads arrive; the
level set in Python decides (also when changed between calls); and logging
from runtime threads at interpreter exit does not crash it."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from typing import List

import pytest

import xlreg
from xlreg import _xlreg
from xlreg.testing import LocalRegistry


def _records(caplog: pytest.LogCaptureFixture, message: str) -> List[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(message)]


def _wait_for(caplog: pytest.LogCaptureFixture, message: str, at_least: int) -> List[logging.LogRecord]:
    deadline = time.monotonic() + 10
    while len(_records(caplog, message)) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    return _records(caplog, message)


def test_records_from_runtime_threads_reach_the_xlreg_loggers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="xlreg")
    with LocalRegistry() as reg:
        xlreg.create_cluster(reg.regcred, "logged", 2)
        xlreg.read_members(reg.regcred, "logged")
        requests = _wait_for(caplog, "request op=", 6)
    listening = _records(caplog, "xlreg registry listening")
    established = _records(caplog, "session established")
    assert len(requests) >= 6, [r.getMessage() for r in caplog.records]
    assert {r.name for r in requests} == {"xlreg.server.connection"}
    assert all(r.levelno == logging.DEBUG for r in requests)
    # Logged by the registry's tasks, on runtime threads, not this one.
    assert all(r.thread != threading.get_ident() for r in requests)
    assert [r.levelno for r in listening] == [logging.INFO]
    assert listening[0].name == "xlreg.server"
    assert f"addr={reg.address}" in listening[0].getMessage()  # tracing's fields
    assert len(established) == 2 and {r.name for r in established} == {"xlreg.client.connection"}


def test_the_level_set_in_python_decides_and_a_change_holds_from_the_next_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="xlreg")
    with LocalRegistry() as quiet:
        xlreg.create_cluster(quiet.regcred, "quiet", 2)
        xlreg.read_members(quiet.regcred, "quiet")
    assert [r for r in caplog.records if r.name.startswith("xlreg")] == []

    caplog.set_level(logging.INFO, logger="xlreg")
    with LocalRegistry() as told:
        xlreg.create_cluster(told.regcred, "told", 2)
    assert len(_records(caplog, "xlreg registry listening")) == 1
    assert _records(caplog, "request op=") == []  # DEBUG is below the level


def test_records_still_arrive_after_the_embedded_cli_ran_in_this_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The CLI sets a global tracing subscriber (for its own stderr log) the
    # first time it runs; the bridge must survive it.
    assert _xlreg.cli_main(["xlreg", "up", "--size", "1"]) == 2
    caplog.set_level(logging.INFO, logger="xlreg")
    with LocalRegistry():
        pass
    assert len(_records(caplog, "xlreg registry listening")) == 1


EXIT_WHILE_LOGGING = (
    "import asyncio, logging, xlreg, xlreg.testing\n"
    "logging.basicConfig(level=logging.DEBUG)\n"
    "reg = xlreg.testing.LocalRegistry()\n"
    "xlreg.create_cluster(reg.regcred, 'c', 2)\n"
    "async def main():\n"
    "    ts = [asyncio.ensure_future(xlreg.aio.read_members(reg.regcred, 'c')) for _ in range(40)]\n"
    "    await asyncio.wait(ts, return_when=asyncio.FIRST_COMPLETED)\n"
    "asyncio.run(main())\n"
    "print('exiting', flush=True)\n"
)


def test_logging_from_runtime_threads_at_exit_does_not_crash_the_interpreter(cli_env: dict) -> None:
    for run in range(6):
        p = subprocess.run(
            [sys.executable, "-X", "faulthandler", "-c", EXIT_WHILE_LOGGING],
            env=cli_env, capture_output=True, text=True, timeout=120,
        )
        assert p.returncode == 0, f"run {run}: exit {p.returncode}\n{p.stdout}{p.stderr}"
        assert p.stdout.strip() == "exiting"
        assert "DEBUG:xlreg.server.connection:request" in p.stderr, p.stderr
