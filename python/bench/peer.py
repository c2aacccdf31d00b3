"""Python channel throughput (`xlreg.peer`, `xlreg.aio.peer`) beside the
Rust channel's (`xlreg bench peer`), in the same run.

Run from the repository (after ``pip install ./python``)::

    python python/bench/peer.py [--megabytes 64] [--rounds 3]

Every row does what ``xlreg bench peer`` does for its channel row: two
members of an in-process cluster (RSA-1024 keys), one channel, a transfer
of ``--megabytes`` MiB in 64 KiB writes announced by an 8-byte big-endian
length, and the receiver's one-byte answer once all arrived; MB/s is 10^6
bytes per second from the first write to the answer, the median of
``--rounds`` transfers. The Rust row is ``xlreg bench peer`` run by the
CLI binary (the package's embedded CLI has no ``bench``): ``--xlreg PATH``
or ``$XLREG_BIN``, else ``target/release/xlreg`` of this checkout, else ``target/debug/xlreg``
(compare like with like: the release binary with a release wheel
(``scripts/build-wheel``), the debug one with ``scripts/test-python``'s dev
build; the binary used is printed), once before and once after the Python
rows; the ratios are against the mean of the two, because the
load of a shared machine drifts. The Python rows: a blocking dialer
(``Connection.sendall``) to a blocking listener (``Connection.recv`` in a
thread), then the same with asyncio streams on one event loop. Each
transfer stops after 30 s. The target is at least 0.8 of Rust.

Two reference rows run the very same transfer code over plain loopback TCP
(no TLS, no xlreg): a blocking ``socket.socket`` pair and
``asyncio.start_server``/``open_connection`` streams. They show what this
interpreter and event loop do with no encryption at all, so the line under
the table gives each channel row against its plain-TCP twin. With uvloop
installed, the asyncio row and its reference run once more on uvloop's
event loop (the target is judged on the default loop's rows).

``CPU s/GB`` is the Python process's CPU time (user + system, all its
threads: both ends, the Rust runtime's threads included) over a row's
transfers, per 10^9 bytes; the Rust rows' figure is ``xlreg bench peer``'s
own (its process's CPU time over the transfers, both ends). The column
after it is a row's figure against the Rust rows' mean: it moves less than
MB/s with the load of a shared machine. ``cs/MiB`` is the Python process's
context switches (voluntary and not, all threads) per MiB moved: a
thread that waits for another, or for the kernel, costs one or two.
"""

from __future__ import annotations

import argparse
import importlib
import asyncio
import json
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Coroutine, List, Optional, Tuple

import xlreg
import xlreg.aio
import xlreg.peer
from xlreg.testing import LocalCluster

CHUNK = 64 * 1024
TRANSFER_LIMIT_S = 30.0
TARGET = 0.8


REPO = Path(__file__).resolve().parents[2]


def rust_xlreg(given: Optional[str]) -> str:
    if given or os.environ.get("XLREG_BIN"):
        return given or os.environ["XLREG_BIN"]
    for profile in ("release", "debug"):
        exe = REPO / "target" / profile / "xlreg"
        if exe.exists():
            return str(exe)
    raise SystemExit("no xlreg binary: build one (cargo build --release -p xlreg-cli) or pass --xlreg")


def rust_mb_per_s(xlreg_bin: str, megabytes: int, rounds: int) -> Tuple[float, float]:
    """``xlreg bench peer``'s channel row: MB/s, and CPU seconds per 10^9
    bytes (both ends, its process's CPU over the transfers alone)."""
    p = subprocess.run(
        [xlreg_bin, "bench", "peer", "--key-bits", "1024",
         "--handshakes", "1", "--megabytes", str(megabytes), "--rounds", str(rounds), "--json"],
        capture_output=True, text=True, timeout=300,
    )
    if p.returncode != 0:
        raise SystemExit(f"xlreg bench peer failed ({p.returncode}): {p.stderr}")
    row = json.loads(p.stdout)["rows"][0]
    return float(row["channel_mb_per_s"]), 1e3 / float(row["channel_mb_per_cpu_s"])


def blocking_transfer(
    accept: Callable[[], Any], connect: Callable[[], Any], nbytes: int
) -> float:
    """One transfer between two blocking connections (anything with
    ``sendall``/``recv`` that is a context manager): ``accept()`` in a
    thread is the receiver, ``connect()`` the sender."""
    errors: List[BaseException] = []

    def sink() -> None:
        try:
            with accept() as conn:
                head = b""
                while len(head) < 8:
                    got = conn.recv(8 - len(head))
                    if not got:
                        raise EOFError("the sender stopped before the length")
                    head += got
                (left,) = struct.unpack(">Q", head)
                while left > 0:
                    got = len(conn.recv(min(left, CHUNK)))
                    if got == 0:
                        raise EOFError("the sender stopped early")
                    left -= got
                conn.sendall(b"\x01")
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=sink)
    t.start()
    buf = b"\x5a" * CHUNK
    with connect() as conn:
        t0 = time.perf_counter()
        conn.sendall(struct.pack(">Q", nbytes))
        left = nbytes
        while left > 0:
            n = min(left, CHUNK)
            conn.sendall(buf if n == CHUNK else buf[:n])
            left -= n
        if conn.recv(1) != b"\x01":
            raise SystemExit("the receiver did not confirm the transfer")
        dt = time.perf_counter() - t0
    t.join(TRANSFER_LIMIT_S)
    if errors:
        raise errors[0]
    return nbytes / dt / 1e6


StartServer = Callable[[Callable[..., Awaitable[None]]], Awaitable[Any]]
OpenConnection = Callable[[Any], Awaitable[Tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def async_rounds(
    start_server: StartServer, open_connection: OpenConnection, nbytes: int, rounds: int
) -> List[float]:
    """``rounds`` transfers between asyncio streams on one event loop:
    ``start_server(cb)`` makes the receiving server (an async context
    manager), ``open_connection(server)`` the sender's streams."""

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        (left,) = struct.unpack(">Q", await reader.readexactly(8))
        while left > 0:
            got = len(await reader.read(min(left, CHUNK)))
            if got == 0:
                raise EOFError("the sender stopped early")
            left -= got
        writer.write(b"\x01")
        await writer.drain()
        writer.close()

    rates = []
    async with await start_server(sink) as server:
        for _ in range(rounds):
            reader, writer = await open_connection(server)
            buf = b"\x5a" * CHUNK

            async def send() -> float:
                t0 = time.perf_counter()
                writer.write(struct.pack(">Q", nbytes))
                left = nbytes
                while left > 0:
                    n = min(left, CHUNK)
                    writer.write(buf if n == CHUNK else buf[:n])
                    await writer.drain()
                    left -= n
                if await reader.readexactly(1) != b"\x01":
                    raise SystemExit("the receiver did not confirm the transfer")
                return nbytes / (time.perf_counter() - t0) / 1e6

            rates.append(await asyncio.wait_for(send(), TRANSFER_LIMIT_S))
            writer.close()
            await writer.wait_closed()
    return rates


#: A row's rates (MB/s), CPU seconds and context switches over its transfers.
Measured = Tuple[List[float], float, int]
#: A printed row: label, MB/s, CPU s/GB, context switches per MiB.
Row = Tuple[str, float, Optional[float], Optional[float]]


def channel_blocking(nbytes: int, rounds: int) -> Measured:
    with LocalCluster(2, endpoints=1, key_bits=1024) as c:
        a, b = c.members
        with xlreg.peer.listen(a.view, a.node, a.take_listeners()[0]) as listener:
            return measured(lambda: [
                blocking_transfer(
                    lambda: listener.accept(timeout=TRANSFER_LIMIT_S),
                    lambda: xlreg.peer.connect(b.view, b.node, a.index),
                    nbytes,
                )
                for _ in range(rounds)
            ])


Runner = Callable[[Coroutine[Any, Any, List[float]]], List[float]]


def channel_asyncio(nbytes: int, rounds: int, run: Runner = asyncio.run) -> Measured:
    with LocalCluster(2, endpoints=1, key_bits=1024) as c:
        a, b = c.members
        sock = a.take_listeners()[0]
        return measured(lambda: run(
            async_rounds(
                lambda cb: xlreg.aio.peer.start_server(cb, a.view, a.node, sock),
                lambda _server: xlreg.aio.peer.open_connection(b.view, b.node, a.index),
                nbytes,
                rounds,
            )
        ))


def plain_blocking(nbytes: int, rounds: int) -> Measured:
    with socket.create_server(("127.0.0.1", 0)) as lsock:
        lsock.settimeout(TRANSFER_LIMIT_S)
        addr = lsock.getsockname()
        return measured(lambda: [
            blocking_transfer(
                lambda: lsock.accept()[0],
                lambda: socket.create_connection(addr, timeout=TRANSFER_LIMIT_S),
                nbytes,
            )
            for _ in range(rounds)
        ])


def plain_asyncio(nbytes: int, rounds: int, run: Runner = asyncio.run) -> Measured:
    return measured(lambda: run(
        async_rounds(
            lambda cb: asyncio.start_server(cb, "127.0.0.1", 0),
            lambda server: asyncio.open_connection(*server.sockets[0].getsockname()[:2]),
            nbytes,
            rounds,
        )
    ))


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def context_switches() -> int:
    """The process's context switches so far (all its threads; voluntary:
    a thread waited, involuntary: it was preempted)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_nvcsw + r.ru_nivcsw


def measured(transfers: Callable[[], List[float]]) -> Measured:
    """The rates of ``transfers()`` and the process CPU seconds they took
    (a row's set-up, e.g. its cluster's keys, is not counted)."""
    cpu0, switches0 = cpu_seconds(), context_switches()
    rates = transfers()
    return rates, cpu_seconds() - cpu0, context_switches() - switches0


def uvloop_rows(row: Callable[..., Row]) -> List[Row]:
    """The asyncio rows again on uvloop's event loop, if it is installed
    (``pip install uvloop``); none otherwise."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return []
    on_uvloop = uvloop.run
    return [
        row("python asyncio on uvloop", lambda n, r: channel_asyncio(n, r, on_uvloop)),
        row("  reference: uvloop streams, plain TCP", lambda n, r: plain_asyncio(n, r, on_uvloop)),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--megabytes", type=int, default=64, help="MiB per transfer (default 64)")
    ap.add_argument("--rounds", type=int, default=3, help="transfers per row (default 3)")
    ap.add_argument("--xlreg", help="the xlreg CLI binary of the Rust rows (default: this checkout's target/release, else target/debug)")
    a = ap.parse_args()
    if not (1 <= a.megabytes <= 4096 and 1 <= a.rounds <= 20):
        ap.error("--megabytes must be 1..4096 and --rounds 1..20")
    nbytes = a.megabytes << 20

    xlreg_bin = rust_xlreg(a.xlreg)
    rust_before = rust_mb_per_s(xlreg_bin, a.megabytes, a.rounds)
    per_gb = 1e9 / (nbytes * a.rounds)

    per_mib = 1 / (a.megabytes * a.rounds)

    def row(label: str, run: Callable[[int, int], Measured]) -> Row:
        rates, cpu, switches = run(nbytes, a.rounds)
        return (label, statistics.median(rates), cpu * per_gb, switches * per_mib)

    blocking = row("python blocking  Connection.sendall/recv", channel_blocking)
    aio = row("python asyncio   StreamWriter/StreamReader", channel_asyncio)
    plain_b = row("  reference: blocking socket, plain TCP", plain_blocking)
    plain_a = row("  reference: asyncio streams, plain TCP", plain_asyncio)
    on_uvloop = uvloop_rows(row)
    rust_after = rust_mb_per_s(xlreg_bin, a.megabytes, a.rounds)

    ref = (rust_before[0] + rust_after[0]) / 2
    rust_cpu = (rust_before[1] + rust_after[1]) / 2
    rows: List[Row] = [
        ("rust   xlreg bench peer (before)", *rust_before, None),
        blocking,
        aio,
        plain_b,
        plain_a,
        *on_uvloop,
        ("rust   xlreg bench peer (after)", *rust_after, None),
    ]
    print(f"one channel, {a.megabytes} MiB in 64 KiB writes, RSA-1024 members, "
          f"median of {a.rounds} transfers")
    print(f"rust rows: {xlreg_bin}; python rows: {xlreg._xlreg.__file__}")
    print(f"{'':44}{'MB/s':>8}  {'vs rust':>7}  {'CPU s/GB':>8}  {'vs rust':>7}  {'cs/MiB':>6}")
    for label, v, cpu, cs in rows:
        cost = "-" if cpu is None or label.startswith("rust") else f"{cpu / rust_cpu:.2f}x"
        cs_text = "-" if cs is None else f"{cs:.1f}"
        print(f"{label:44}{v:8.0f}  {v / ref:6.2f}x  {'-' if cpu is None else f'{cpu:.2f}':>8}  "
              f"{cost:>7}  {cs_text:>6}")
    print(f"(vs rust: against the mean of the two rust rows, {ref:.0f} MB/s, {rust_cpu:.2f} CPU s/GB)")
    print(f"(reference rows: the same transfer over loopback TCP with no TLS, in this process; "
          f"channel / plain: blocking {blocking[1] / plain_b[1]:.2f}x, "
          f"asyncio {aio[1] / plain_a[1]:.2f}x)")
    print("(CPU s/GB vs rust: what a byte costs the row, both ends, against the rust rows' mean; "
          "it moves less with the machine's load than MB/s. cs/MiB: the process's context "
          "switches per MiB moved)")
    worst = min(blocking[1], aio[1]) / ref
    print(f"target: python at least {TARGET}x of rust: {'met' if worst >= TARGET else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
