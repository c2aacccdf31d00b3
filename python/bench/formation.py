"""Python boot of 64 members against the Rust `xlreg bench formation`, side by side.

Run from the repository (after ``pip install ./python``)::

    python python/bench/formation.py [--runs 5] [--size 64] [--key-bits 1024]

Both figures come from this run on this machine. The Rust row is ``xlreg
bench formation`` run by the release build of the ``xlreg`` command (the wheel's
embedded CLI has no benchmarks): ``$XLREG_BIN`` if set, else
``cargo build --release -p xlreg-cli`` is run first and its binary used. It runs once
before and once after the Python rows; the ratios are against the mean of the two. The
Python rows do what that benchmark does: one in-process registry
(``xlreg.testing.LocalRegistry``), keys made beforehand, per run a new
cluster created first, then every member boots at once — from 64 Python
threads calling ``xlreg.boot``, then from one asyncio loop gathering
``xlreg.aio.boot``. The time runs from the start of the boots to the last
member's complete view. Each row stops after ``--runs`` runs or 20 s. The
target is a Python/Rust ratio of at most 1.5.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, List

import xlreg
import xlreg.aio
from xlreg.testing import LocalRegistry

ROW_BUDGET_S = 20.0
TARGET = 1.5


@functools.lru_cache(maxsize=None)
def rust_xlreg() -> str:
    """The release `xlreg` binary with benchmarks: $XLREG_BIN, else built now."""
    if os.environ.get("XLREG_BIN"):
        return os.environ["XLREG_BIN"]
    root = Path(__file__).resolve().parents[2]
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "xlreg-cli"], cwd=root, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
    return str(target / "release" / "xlreg")


def rust_median_ms(size: int, key_bits: int, runs: int) -> float:
    p = subprocess.run(
        [rust_xlreg(), "bench", "formation", "--sizes", str(size),
         "--key-bits", str(key_bits), "--runs", str(runs), "--json"],
        capture_output=True, text=True, timeout=120,
    )
    if p.returncode != 0:
        raise SystemExit(f"xlreg bench formation failed ({p.returncode}): {p.stderr}")
    rows = json.loads(p.stdout)["rows"]
    return float(rows[0]["median_ms"])


def boot_threads(rc: xlreg.RegCred, nodes: List[xlreg.Node], name: str) -> float:
    """Boot every node from its own thread; ms from the release of the
    (already started) threads to the last complete view."""
    errors: List[BaseException] = []
    go = threading.Barrier(len(nodes) + 1)

    def member(n: xlreg.Node) -> None:
        try:
            go.wait()
            xlreg.boot(rc, n, cluster=name, wait=30)
        except BaseException as e:  # reported below
            errors.append(e)

    ts = [threading.Thread(target=member, args=(n,)) for n in nodes]
    for t in ts:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    dt = (time.perf_counter() - t0) * 1000
    if errors:
        raise errors[0]
    return dt


def boot_asyncio(rc: xlreg.RegCred, nodes: List[xlreg.Node], name: str) -> float:
    """Boot every node from one asyncio loop; ms from the first boot call
    to the last complete view."""

    async def main() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(xlreg.aio.boot(rc, n, cluster=name, wait=30) for n in nodes))
        return (time.perf_counter() - t0) * 1000

    return asyncio.run(main())


def measure(rc: xlreg.RegCred, nodes: List[xlreg.Node], runs: int, label: str,
            boot_all: Callable[[xlreg.RegCred, List[xlreg.Node], str], float]) -> List[float]:
    times: List[float] = []
    row_start = time.monotonic()
    for i in range(runs + 1):  # the first run is a warm-up
        name = f"bench-{label}-{os.getpid()}-{i}"
        xlreg.create_cluster(rc, name, len(nodes))
        dt = boot_all(rc, nodes, name)
        if i > 0:
            times.append(dt)
        if time.monotonic() - row_start > ROW_BUDGET_S:
            break
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="measured runs per row (1..50)")
    ap.add_argument("--size", type=int, default=64, help="members (2..64)")
    ap.add_argument("--key-bits", type=int, default=1024, help="member key size")
    a = ap.parse_args()
    if not 1 <= a.runs <= 50 or not 2 <= a.size <= 64:
        ap.error("--runs must be 1..50 and --size 2..64")

    print(f"formation of {a.size} members, RSA-{a.key_bits} member keys, "
          f"median of up to {a.runs} runs (each row also stops after {ROW_BUDGET_S:.0f} s)",
          flush=True)
    nodes = [
        xlreg.Node.generate(name=f"m{i:02}", endpoints=[f"127.0.0.1:{30000 + i}"], key_bits=a.key_bits)
        for i in range(a.size)
    ]
    # Rust before and after the Python rows: on a shared machine the load
    # drifts; the reference is the mean of the two medians.
    rust_before = rust_median_ms(a.size, a.key_bits, a.runs)
    with LocalRegistry() as reg:
        rc = reg.regcred
        threads = measure(rc, nodes, a.runs, "threads", boot_threads)
        aio = measure(rc, nodes, a.runs, "asyncio", boot_asyncio)
    rust_after = rust_median_ms(a.size, a.key_bits, a.runs)
    rust = (rust_before + rust_after) / 2

    rows = [
        ("rust   xlreg bench formation (before)", rust_before),
        ("python threads  xlreg.boot", statistics.median(threads)),
        ("python asyncio  xlreg.aio.boot", statistics.median(aio)),
        ("rust   xlreg bench formation (after)", rust_after),
    ]
    print(f"{'':38} {'median ms':>10} {'vs rust':>8}")
    ok = True
    for label, ms in rows:
        ratio = ms / rust
        if label.startswith("python"):
            ok &= ratio <= TARGET
        print(f"{label:38} {ms:10.1f} {ratio:7.2f}x")
    print(f"(vs rust: against the mean of the two rust medians, {rust:.1f} ms)")
    print(f"target: python within {TARGET}x of rust: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
