"""`xlreg up --size 3 --faults -- python examples/python/partition_detector.py`
while `xlreg fault … partition 0,1 2` and `heal` run: the members report
exactly the links across the partition down, then back; `xlreg fault
status` reads the fault back; SIGTERM ends up cleanly."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import List, Set

CUT = {("m00", "m02"), ("m01", "m02"), ("m02", "m00"), ("m02", "m01")}


def test_the_partition_detector_reports_a_partition_and_its_heal(
    repo: Path, xlreg_cmd: List[str], cli_env: dict, tmp_path: Path
) -> None:
    name = f"pd-{os.getpid()}"
    env = dict(cli_env, XDG_RUNTIME_DIR=str(tmp_path))
    up = subprocess.Popen(
        [*xlreg_cmd, "up", "--size", "3", "--key-bits", "1024", "--faults", "--name", name,
         "--", "python", "examples/python/partition_detector.py"],
        cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    lines: "queue.Queue[str]" = queue.Queue()
    seen: List[str] = []

    def pump() -> None:
        assert up.stderr is not None
        for line in up.stderr:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()

    def wait_for(want: Set[str]) -> None:
        want = set(want)
        deadline = time.monotonic() + 60
        while want:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                up.kill()
                raise AssertionError(f"never saw {sorted(want)}; up said:\n" + "\n".join(seen))
            seen.append(line)
            want.discard(line)

    def fault(*words: str) -> str:
        p = subprocess.run([*xlreg_cmd, "fault", "--cluster", name, *words],
                           env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout

    try:
        pairs = [(a, b) for a in ("m00", "m01", "m02") for b in ("m00", "m01", "m02") if a != b]
        wait_for({f"[{a}] {a}: {b} answers" for a, b in pairs})
        fault("partition", "0,1", "2")
        wait_for({f"[{a}] {a}: {b} down" for a, b in CUT})
        assert fault("status").startswith("faults: partition 0,1 2")
        fault("heal")
        wait_for({f"[{a}] {a}: {b} back" for a, b in CUT})
        # m00 <-> m01 were never cut.
        assert not any("m00: m01 down" in s or "m01: m00 down" in s for s in seen), seen
        assert any(s.endswith("Z fault: partition 0,1 2") for s in seen), seen
        # SIGTERM, as a CI runner stops it (under the Python console script
        # SIGINT also raises KeyboardInterrupt in the interpreter).
        up.send_signal(signal.SIGTERM)
        assert up.wait(30) == 0, "\n".join(seen)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
