"""Every exception type, each produced by a real failure: a bad file, a
registry Error, an incomplete cluster at the deadline, nothing listening, a
registry that never answers, one that hangs up, one that sends noise, bad
arguments, a corrupt node directory and a Rust panic."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import threading
from pathlib import Path

import pytest

import xlreg
from xlreg import _xlreg
from xlreg.testing import LocalRegistry


def node(name: str = "n") -> xlreg.Node:
    return xlreg.Node.generate(name=name, endpoints=["127.0.0.1:7100"], key_bits=1024)


def regcred_at(template: xlreg.RegCred, address: str) -> xlreg.RegCred:
    """The template's credentials, pointing at another address."""
    return xlreg.RegCred.parse(template.to_text().replace(template.address or "", address))


def test_registry_error_carries_the_registry_text() -> None:
    with LocalRegistry() as r:
        with pytest.raises(xlreg.RegistryError) as ei:
            xlreg.boot(r.regcred, node(), cluster_id="00" * 20, wait=1)
    e = ei.value
    assert e.server_text == "cannot find cluster with this ID"
    assert e.request == "Join"
    assert "registry refused Join" in str(e)


def test_incomplete_cluster_at_the_deadline_says_how_many_arrived() -> None:
    with LocalRegistry() as r:
        xlreg.create_cluster(r.regcred, "lonely", 3)
        with pytest.raises(xlreg.IncompleteClusterError) as ei:
            xlreg.boot(r.regcred, node(), cluster="lonely", wait=0.3)
    e = ei.value
    assert (e.arrived, e.expected) == (1, 3)
    # The cluster as the caller named it (or its ID when the name is unknown).
    assert e.cluster == "lonely"  # the name as given, not Rust-quoted
    assert e.waited >= 0.3
    assert "1 of 3 members" in str(e)


def test_nothing_listening_is_a_connection_refused_oserror() -> None:
    with LocalRegistry() as r:
        rc = r.regcred
    # The registry is stopped: nothing listens at its address any more.
    with pytest.raises(xlreg.NetworkError) as ei:
        xlreg.boot(rc, node(), cluster="any", timeout=5)
    e = ei.value
    assert isinstance(e, OSError) and isinstance(e, ConnectionRefusedError)
    assert isinstance(e, xlreg.RegistryUnreachableError)
    assert e.errno == errno.ECONNREFUSED
    assert e.address == rc.address
    assert rc.address in str(e)
    assert "refused" in str(e).lower()  # the OS error is part of the message


def test_a_registry_that_never_answers_is_a_timeout_error() -> None:
    with LocalRegistry() as r:
        template = r.regcred
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        rc = regcred_at(template, f"127.0.0.1:{silent.getsockname()[1]}")
        with pytest.raises(TimeoutError) as ei:
            xlreg.register(rc, node(), timeout=0.3)
        assert isinstance(ei.value, xlreg.RegistryTimeoutError)
        assert isinstance(ei.value, xlreg.NetworkError)
        assert "timed out" in str(ei.value)
    finally:
        silent.close()


def fake_registry(reply: bytes) -> socket.socket:
    """A listener that reads one Hello, answers `reply` and hangs up."""
    srv = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(4096)
            if reply:
                conn.sendall(reply)
                conn.settimeout(5)
                try:
                    conn.recv(16)
                except OSError:
                    pass

    threading.Thread(target=run, daemon=True).start()
    return srv


def test_a_registry_that_hangs_up_is_a_connection_closed_error() -> None:
    with LocalRegistry() as r:
        template = r.regcred
    rude = fake_registry(b"")
    try:
        rc = regcred_at(template, f"127.0.0.1:{rude.getsockname()[1]}")
        with pytest.raises(xlreg.ConnectionClosedError) as ei:
            xlreg.register(rc, node(), timeout=5)
        assert isinstance(ei.value, ConnectionError) and isinstance(ei.value, xlreg.NetworkError)
        assert "closed the connection" in str(ei.value)
    finally:
        rude.close()


def test_a_reply_that_is_not_protocol_is_a_protocol_error() -> None:
    with LocalRegistry() as r:
        template = r.regcred
    liar = fake_registry(os.urandom(64))  # a HelloReply's size, but noise
    try:
        rc = regcred_at(template, f"127.0.0.1:{liar.getsockname()[1]}")
        with pytest.raises(xlreg.ProtocolError) as ei:
            xlreg.register(rc, node(), timeout=5)
        assert "HelloReply" in str(ei.value)
    finally:
        liar.close()


def test_bad_arguments_are_usage_errors_naming_the_argument() -> None:
    n = node()
    with LocalRegistry() as r:
        rc = r.regcred
        cases = [
            (lambda: xlreg.boot(rc, n, cluster="a", cluster_id="00" * 20), "not both"),
            (lambda: xlreg.boot(rc, n), "which cluster"),
            (lambda: xlreg.boot(rc, n, cluster_id="xyz"), "cluster_id="),
            (lambda: xlreg.boot(rc, n, cluster="a", wait=-1), "wait=-1"),
            (lambda: xlreg.boot(rc, n, cluster="a", timeout=float("nan")), "timeout=NaN"),
            (lambda: xlreg.create_cluster(rc, "c", 1), "size=1"),
            (lambda: xlreg.create_cluster(rc, "c", 4, endpoints=0), "endpoints=0"),
            (lambda: xlreg.Node.generate(key_bits=512), "key_bits=512"),
            (lambda: xlreg.testing.LocalCluster(65), "size=65"),
        ]
        for call, needle in cases:
            with pytest.raises(xlreg.UsageError) as ei:
                call()
            assert isinstance(ei.value, ValueError)
            assert needle in str(ei.value), (needle, str(ei.value))


def test_a_step_out_of_protocol_order_is_a_usage_error() -> None:
    with LocalRegistry() as r, xlreg.Session(r.regcred) as s:
        with pytest.raises(xlreg.UsageError):
            s.join(cluster="x")  # before register


def test_a_corrupt_node_directory_is_a_node_error_naming_the_file(tmp_path: Path) -> None:
    d = tmp_path / "node"
    xlreg.Node.load_or_create(d, name="n", key_bits=1024)
    f = d / "node.json"
    doc = json.loads(f.read_text())
    doc["format"] = 99
    f.write_text(json.dumps(doc))
    with pytest.raises(xlreg.NodeError) as ei:
        xlreg.Node.load(d)
    assert str(f) in str(ei.value) and "format 99" in str(ei.value)
    with pytest.raises(xlreg.NodeError):
        xlreg.Node.load(tmp_path / "empty")


def test_a_bad_member_name_is_a_node_error() -> None:
    with pytest.raises(xlreg.NodeError) as ei:
        xlreg.Node.generate(name="bad\nname", key_bits=1024)
    assert "control characters" in str(ei.value)


def test_up_env_without_the_variables_names_the_missing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ["XLREG_REGCRED", "XLREG_CLUSTER_ID", "XLREG_NODE_DIR"]:
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(xlreg.UsageError) as ei:
        xlreg.UpEnv.from_env()
    assert "XLREG_" in str(ei.value)


@pytest.mark.parametrize("where", ["call", "blocking"])
def test_a_rust_panic_is_an_internal_error_not_a_crash(where: str) -> None:
    with pytest.raises(xlreg.InternalError) as ei:
        _xlreg._panic_for_tests(where)
    assert f"test panic ({where})" in str(ei.value)
    # The interpreter and the runtime still work.
    assert xlreg.Node.generate(key_bits=1024).id


def test_a_rust_panic_in_an_awaitable_is_an_internal_error() -> None:
    async def main() -> None:
        await _xlreg._panic_for_tests("async")

    with pytest.raises(xlreg.InternalError) as ei:
        asyncio.run(main())
    assert "test panic (async)" in str(ei.value)


def test_async_flows_raise_the_same_exceptions() -> None:
    import xlreg.aio

    async def main(rc: xlreg.RegCred) -> None:
        await xlreg.aio.boot(rc, node(), cluster_id="00" * 20, wait=1)

    with LocalRegistry() as r:
        with pytest.raises(xlreg.RegistryError) as ei:
            asyncio.run(main(r.regcred))
    assert ei.value.server_text == "cannot find cluster with this ID"


def test_every_exception_is_an_xlreg_error() -> None:
    for cls in [
        xlreg.RegCredError, xlreg.RegistryError, xlreg.IncompleteClusterError,
        xlreg.NetworkError, xlreg.RegistryTimeoutError, xlreg.RegistryUnreachableError,
        xlreg.ConnectionClosedError, xlreg.ProtocolError, xlreg.NodeError,
        xlreg.UsageError, xlreg.InternalError,
    ]:
        assert issubclass(cls, xlreg.XlRegError)
