"""Regressions of issue 18 §2–§3, each with its repro: `import xlreg` is
the whole package; the wait deadline is exact; error fields; stubs that
pass `mypy --strict`; TypeError for wrong types; create_cluster's admin
and exist_ok; the fixtures' key pool never shared by live clusters."""

from __future__ import annotations

import inspect
import os
import socket
import subprocess
import sys
import time
import ast
from pathlib import Path
from typing import Any

import pytest

import xlreg
from xlreg import _xlreg
from xlreg.testing import LocalCluster, LocalRegistry


def node(name: str = "n") -> xlreg.Node:
    return xlreg.Node.generate(name=name, endpoints=["127.0.0.1:7100"], key_bits=1024)


def test_import_xlreg_alone_exposes_aio_testing_and_peer() -> None:
    code = (
        "import sys, xlreg\n"
        "assert 'xlreg.aio' not in sys.modules and 'xlreg.testing' not in sys.modules\n"
        "assert callable(xlreg.aio.boot) and callable(xlreg.aio.peer.open_connection)\n"
        "assert xlreg.testing.LocalCluster and callable(xlreg.peer.connect)\n"
        "assert {'aio', 'peer', 'testing'} <= set(dir(xlreg))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_boot_gives_up_at_the_wait_deadline_not_at_the_next_whole_second() -> None:
    # The registry holds GetCluster up to 1 s; wait=0.2 used to end at 1.0 s.
    with LocalRegistry() as r:
        xlreg.create_cluster(r.regcred, "three", 3)
        t0 = time.monotonic()
        with pytest.raises(xlreg.IncompleteClusterError) as ei:
            xlreg.boot(r.regcred, node(), "three", wait=0.2)
        took = time.monotonic() - t0
    assert 0.2 <= took < 0.7, took
    assert ei.value.cluster == "three"  # not '"three"'
    assert 0.2 <= ei.value.waited < 0.7


def test_a_registry_timeout_names_the_address() -> None:
    with LocalRegistry() as r:
        template = r.regcred
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        rc = xlreg.RegCred.parse(template.to_text().replace(template.address or "", address))
        with pytest.raises(xlreg.RegistryTimeoutError) as ei:
            xlreg.register(rc, node(), timeout=0.3)
    finally:
        silent.close()
    assert ei.value.address == address
    assert address in str(ei.value)


def test_a_wrong_argument_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        xlreg.boot(42, node(), "c")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        xlreg.boot("regCred.dat", "not a node", "c")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        xlreg.create_cluster(3.5, "c", 3)  # type: ignore[arg-type]


def test_signatures_show_the_real_defaults() -> None:
    assert inspect.signature(xlreg.boot).parameters["wait"].default == 30.0
    assert "wait=30.0" in (xlreg.boot.__text_signature__ or "")
    assert "default 15" in (xlreg.boot.__doc__ or "")
    assert "wait=30.0" in (xlreg.UpEnv.boot.__text_signature__ or "")


def test_extension_classes_cannot_be_subclassed_and_the_stub_says_final() -> None:
    stub = ast.parse(Path(xlreg.__file__).with_name("_xlreg.pyi").read_text())
    for c in (n for n in stub.body if isinstance(n, ast.ClassDef)):
        assert any(isinstance(d, ast.Name) and d.id == "final" for d in c.decorator_list), c.name
        with pytest.raises(TypeError):
            type("Sub", (getattr(_xlreg, c.name),), {})


def test_the_readme_style_snippets_pass_mypy_strict(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    f = tmp_path / "snippet.py"
    f.write_text(
        "import xlreg\n"
        "from xlreg.testing import LocalCluster, LocalRegistry\n\n"
        "def name(view: xlreg.ClusterView) -> str:\n"
        "    return view.me.name\n\n"
        "def in_block() -> int:\n"
        "    with LocalRegistry():\n"
        "        return 1\n\n"
        "def in_cluster() -> int:\n"
        "    with LocalCluster(2):\n"
        "        return 2\n\n"
        "def in_session(rc: xlreg.RegCred) -> int:\n"
        "    with xlreg.Session(rc):\n"
        "        return 3\n"
    )
    out, err, status = api.run(["--strict", "--no-incremental", str(f)])
    assert status == 0, out + err


def test_create_cluster_as_a_given_admin_and_exist_ok_for_another_shape() -> None:
    with LocalRegistry() as r:
        admin = node("boss")
        info = xlreg.create_cluster(r.regcred, "shape", 3, 2, admin=admin)
        assert (info.max_size, info.endpoint_count) == (3, 2)
        # Same shape again: the existing cluster, no error.
        assert xlreg.create_cluster(r.regcred, "shape", 3, 2).id == info.id
        with pytest.raises(xlreg.ClusterExistsError) as ei:
            xlreg.create_cluster(r.regcred, "shape", 4, 2)
        e = ei.value
        assert isinstance(e, xlreg.UsageError) and isinstance(e, ValueError)
        assert (e.name, e.max_size, e.endpoint_count) == ("shape", 3, 2)
        assert "exist_ok=True" in str(e) and "size 3" in str(e)
        same = xlreg.create_cluster(r.regcred, "shape", 4, 1, exist_ok=True)
        assert (same.id, same.max_size) == (info.id, 3)


def test_create_cluster_reuses_one_admin_identity_per_process() -> None:
    # The admin is made once; the members see the same creator either way,
    # so what is observable is that many creates stay cheap: each one is a
    # registry round trip (no 2048-bit key pair per call).
    with LocalRegistry() as r:
        xlreg.create_cluster(r.regcred, "warm", 2)  # makes the admin, if not yet
        t0 = time.monotonic()
        for i in range(5):
            xlreg.create_cluster(r.regcred, f"c{i}", 2)
        per_call = (time.monotonic() - t0) / 5
    # A 2048-bit key pair takes 0.3–1.2 s; a round trip a few ms.
    assert per_call < 0.25, per_call


def test_two_live_clusters_of_one_test_never_share_keys(xlreg_cluster: Any) -> None:
    a: LocalCluster = xlreg_cluster(3)
    b: LocalCluster = xlreg_cluster(3)
    ka = {m.node.sig_key_pem for m in a.members} | {m.node.comms_key_pem for m in a.members}
    kb = {m.node.sig_key_pem for m in b.members} | {m.node.comms_key_pem for m in b.members}
    assert not ka & kb
    # Once a cluster is shut down, its keys go back to the pool.
    b.shutdown()
    c: LocalCluster = xlreg_cluster(3)
    assert {m.node.sig_key_pem for m in c.members} == {m.node.sig_key_pem for m in b.members}


def test_the_fixture_and_channel_tests_pass_under_xdist_with_two_workers(
    repo: Path, xlreg_key_pool: Path
) -> None:
    # Two worker processes share one key pool directory; each process keeps
    # its live clusters apart, and the pool's files survive concurrent use.
    pytest.importorskip("xdist")
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider",
         "python/tests/test_fixtures.py", "python/tests/test_peer.py"],
        cwd=repo, capture_output=True, text=True, timeout=300,
        env={**os.environ, "XLREG_KEY_POOL": str(xlreg_key_pool)},
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert " passed" in p.stdout and "failed" not in p.stdout
