"""Booting clusters of Python members: against an `xlreg serve` process,
mixed with `xlreg join` CLI members, and 16 at once under asyncio."""

from __future__ import annotations

import asyncio
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List

import xlreg
import xlreg.aio
from xlreg.testing import LocalRegistry


def nodes(n: int, prefix: str, endpoints: int = 1) -> List[xlreg.Node]:
    return [
        xlreg.Node.generate(
            name=f"{prefix}{i}",
            endpoints=[f"127.0.0.1:{20000 + 10 * i + k}" for k in range(endpoints)],
            key_bits=1024,
        )
        for i in range(n)
    ]


def check_complete_and_identical(views: List[xlreg.ClusterView], ns: List[xlreg.Node]) -> None:
    size = len(ns)
    assert sorted(v.self_index for v in views) == list(range(size))
    first = views[0]
    for v, n in zip(views, ns):
        assert v.is_complete and len(v) == size
        assert v.cluster_id == first.cluster_id
        assert v.members == first.members
        assert v.me is not None and v.me.id == n.id and v.me.name == n.name
        assert [p.index for p in v.peers] == [i for i in range(size) if i != v.self_index]
    assert {m.id for m in first.members} == {n.id for n in ns}


def test_five_python_members_boot_against_an_xlreg_serve_process(serve: Path) -> None:
    rc = xlreg.RegCred.load(serve)
    info = xlreg.create_cluster(rc, "five", 5, endpoints=2)
    assert (info.max_size, info.endpoint_count, info.name) == (5, 2, "five")
    ns = nodes(5, "py", endpoints=2)
    with ThreadPoolExecutor(5) as ex:
        views = list(ex.map(lambda n: xlreg.boot(rc, n, cluster="five", wait=30), ns))
    check_complete_and_identical(views, ns)
    assert all(v.cluster_id == info.id and v.endpoint_count == 2 for v in views)
    for m in views[0].members:
        assert len(m.endpoints) == 2
    # An outsider reads the same members without joining.
    listed = xlreg.read_members(rc, cluster_id=info.id)
    assert listed.members == views[0].members


def test_python_and_cli_members_in_one_cluster_see_identical_views(
    tmp_path: Path, xlreg_cmd: List[str], cli_env: dict
) -> None:
    with LocalRegistry() as r:
        info = xlreg.create_cluster(r.regcred, "mixed", 4)
        procs = [
            subprocess.Popen(
                [
                    *xlreg_cmd, "join", "--regcred", str(r.regcred_path), "--cluster-id", info.id,
                    "--node-dir", str(tmp_path / f"cli{i}"), "--name", f"cli{i}",
                    "--endpoint", f"127.0.0.1:{21000 + i}", "--key-bits", "1024", "--json",
                    "--wait", "30",
                ],
                env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for i in range(2)
        ]
        ns = nodes(2, "py")
        with ThreadPoolExecutor(2) as ex:
            views = list(ex.map(lambda n: xlreg.boot(r.regcred, n, cluster_id=info.id), ns))
        cli_docs = []
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            cli_docs.append(json.loads(out))
    py_docs = [json.loads(v.to_json()) for v in views]
    names = {m["name"] for m in py_docs[0]["members"]}
    assert names == {"py0", "py1", "cli0", "cli1"}
    everyone = py_docs + cli_docs
    assert sorted(d["self_index"] for d in everyone) == [0, 1, 2, 3]
    for d in everyone:
        d.pop("self_index")
    assert all(d == everyone[0] for d in everyone), everyone
    assert everyone[0]["cluster_id"] == info.id


def test_sixteen_asyncio_members_boot_concurrently_without_blocking_the_loop() -> None:
    ns = nodes(16, "aio")

    async def main(rc: xlreg.RegCred) -> tuple:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.ensure_future(ticker())
        info = await xlreg.aio.create_cluster(rc, "aio16", 16)
        views = await asyncio.gather(*(xlreg.aio.boot(rc, n, cluster="aio16") for n in ns))
        done.set()
        await t
        listed = await xlreg.aio.read_members(rc, "aio16")
        return info, views, listed, ticks

    with LocalRegistry() as r:
        info, views, listed, ticks = asyncio.run(main(r.regcred))
    check_complete_and_identical(list(views), ns)
    assert views[0].cluster_id == info.id and listed.cluster_id == info.id
    assert len(listed) == 16
    # The loop kept running while the members booted.
    assert ticks > 0


def test_register_returns_the_node_id_and_session_steps_one_at_a_time() -> None:
    a, b = nodes(2, "step")
    with LocalRegistry() as r:
        assert xlreg.register(r.regcred, a) == a.id
        with xlreg.Session(r.regcred) as s:
            assert s.is_open and s.address == r.address
            assert s.register(a) == a.id
            info = s.create("steps", 2)
            assert info.max_size == 2
            joined = s.join(cluster="steps")
            assert joined.id == info.id
            assert [m.id for m in s.get_members(info.id)] == [a.id]
        assert not s.is_open
        view = xlreg.boot(r.regcred, b, cluster="steps", wait=10)
        assert [m.name for m in view.members] == ["step0", "step1"]
        with xlreg.Session(r.regcred) as s2:
            s2.register(xlreg.Node.generate(key_bits=1024))
            got = s2.get_members(info.id, [1])
            assert [m.index for m in got] == [1]
            assert got[0].id == b.id


def test_cancelling_an_asyncio_boot_returns_at_once() -> None:
    import time

    (n,) = nodes(1, "cancel")

    async def main(rc: xlreg.RegCred) -> float:
        await xlreg.aio.create_cluster(rc, "never-full", 3)
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(xlreg.aio.boot(rc, n, cluster="never-full", wait=30), 0.3)
        except asyncio.TimeoutError:
            return time.monotonic() - t0
        raise AssertionError("a boot into a cluster that never fills completed")

    with LocalRegistry() as r:
        waited = asyncio.run(main(r.regcred))
    assert 0.3 <= waited < 5


def test_ctrl_c_interrupts_a_blocking_boot() -> None:
    import signal
    import sys
    import time

    script = (
        "import sys, xlreg\n"
        "n = xlreg.Node.generate(name='x', endpoints=['127.0.0.1:7300'], key_bits=1024)\n"
        "xlreg.create_cluster(sys.argv[1], 'never-full', 3)\n"
        "print('booting', flush=True)\n"
        "try:\n"
        "    xlreg.boot(sys.argv[1], n, cluster='never-full', wait=60)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "    sys.exit(3)\n"
    )
    with LocalRegistry() as r:
        p = subprocess.Popen([sys.executable, "-c", script, str(r.regcred_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "booting"
            time.sleep(0.5)
            t0 = time.monotonic()
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=10)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert p.returncode == 3, err
    assert "interrupted" in out
    assert time.monotonic() - t0 < 5
