"""The members' encrypted channel from Python (`xlreg.peer`,
`xlreg.aio.peer`): rings of members over it (threads and asyncio), a
Python member and a Rust member (`xlreg peer send/listen`) both ways, an
anonymous cluster client, and each refusal (no certificate, wrong key,
another cluster) as `xlreg.PeerRefusedError` on both sides."""

from __future__ import annotations

import _thread
import asyncio
import socket
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional

import pytest

import xlreg
from xlreg import peer
from xlreg.testing import LocalCluster, LocalRegistry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ring_message(sender: int, receiver: int) -> bytes:
    return f"ring message from {sender} to {receiver}".encode()


def test_a_blocking_ring_of_three_members_authenticates_every_sender(
    xlreg_cluster: Any,
) -> None:
    c: LocalCluster = xlreg_cluster(3)
    n = len(c)
    got: Dict[int, Any] = {}
    errors: List[BaseException] = []

    def member(m: Any) -> None:
        try:
            me = m.index
            with peer.listen(m.view, m.node, m.take_listeners()[0]) as listener:

                def receive() -> None:
                    with listener.accept(timeout=20) as conn:
                        got[me] = (conn.peer, peer.recv_message(conn))

                receiver = threading.Thread(target=receive)
                receiver.start()
                # Connecting does not wait for the peer's accept(): its
                # listener runs handshakes as dialers arrive.
                with peer.connect(m.view, m.node, (me + 1) % n) as out:
                    assert out.peer is not None and out.peer.index == (me + 1) % n
                    peer.send_message(out, ring_message(me, (me + 1) % n))
                receiver.join(30)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=member, args=(m,)) for m in c.members]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for me in range(n):
        who, msg = got[me]
        prev = (me - 1) % n
        assert who == c.members[prev].view.me
        assert msg == ring_message(prev, me)


def test_an_asyncio_ring_of_four_members_over_streams(xlreg_cluster: Any) -> None:
    c: LocalCluster = xlreg_cluster(4)
    n = len(c)

    async def member(m: Any) -> Any:
        me = m.index
        received: "asyncio.Future[Any]" = asyncio.get_running_loop().create_future()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            msg = await xlreg.aio.peer.recv_message(reader, writer)
            received.set_result((writer.get_extra_info("peer"), msg))
            writer.close()
            await writer.wait_closed()

        server = await xlreg.aio.peer.start_server(handle, m.view, m.node, m.take_listeners()[0])
        async with server:
            reader, writer = await xlreg.aio.peer.open_connection(m.view, m.node, (me + 1) % n)
            assert writer.get_extra_info("peer").index == (me + 1) % n
            await xlreg.aio.peer.send_message(reader, writer, ring_message(me, (me + 1) % n))
            writer.close()
            await writer.wait_closed()
            return await asyncio.wait_for(received, 20)

    async def main() -> List[Any]:
        return list(await asyncio.gather(*(member(m) for m in c.members)))

    results = asyncio.run(main())
    for me, (who, msg) in enumerate(results):
        prev = (me - 1) % n
        assert who == c.members[prev].view.me
        assert msg == ring_message(prev, me)


def test_asyncio_streams_carry_a_megabyte_each_way_and_half_close(xlreg_cluster: Any) -> None:
    c: LocalCluster = xlreg_cluster(2)
    a, b = c.members
    blob = bytes(range(256)) * 4096  # 1 MiB

    async def main() -> bytes:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read()  # until the dialer's write_eof
            writer.write(data[::-1])
            await writer.drain()
            writer.close()

        async with await xlreg.aio.peer.start_server(echo, a.view, a.node, a.take_listeners()[0]):
            reader, writer = await xlreg.aio.peer.open_connection(b.view, b.node, a.index)
            writer.write(blob)
            await writer.drain()
            writer.write_eof()
            back = await reader.read()
            writer.close()
            await writer.wait_closed()
            return back

    assert asyncio.run(main()) == blob[::-1]


def test_recv_returns_what_arrived_and_empty_after_the_peer_shuts_down_its_direction(
    xlreg_cluster: Any,
) -> None:
    c: LocalCluster = xlreg_cluster(2)
    a, b = c.members
    with peer.listen(a.view, a.node, a.take_listeners()[0]) as listener:
        with peer.connect(b.view, b.node, a.index) as out:
            with listener.accept(timeout=10) as conn:
                assert conn.recv(0) == b""
                out.sendall(b"abc")
                # recv decrypts into a bytes of n; a short read is its own.
                assert conn.recv(65536) == b"abc"
                out.sendall(b"x" * 100_000)
                out.shutdown()
                got = b""
                while True:
                    chunk = conn.recv(30_000)
                    if not chunk:
                        break
                    assert type(chunk) is bytes and len(chunk) <= 30_000
                    got += chunk
                assert got == b"x" * 100_000
                # Our direction is still open.
                conn.sendall(b"still here")
                assert out.recv(100) == b"still here"
    assert conn.closed and out.closed and listener.closed


def test_accept_honours_its_timeout_and_ctrl_c(xlreg_cluster: Any) -> None:
    c: LocalCluster = xlreg_cluster(2)
    a = c.members[0]
    with peer.listen(a.view, a.node, a.take_listeners()[0]) as listener:
        t0 = time.monotonic()
        with pytest.raises(xlreg.PeerTimeoutError) as ei:
            listener.accept(timeout=0.2)
        assert 0.2 <= time.monotonic() - t0 < 1.0
        assert isinstance(ei.value, TimeoutError)
        timer = threading.Timer(0.2, _thread.interrupt_main)
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            listener.accept()
        assert time.monotonic() - t0 < 2.0
        timer.join()


def test_listen_without_a_socket_binds_the_members_first_endpoint(xlreg_cluster: Any) -> None:
    c: LocalCluster = xlreg_cluster(2)
    a, b = c.members
    a.take_listeners().clear()  # the sockets close: the endpoint is free
    with peer.listen(a.view, a.node) as listener:
        host, port = listener.address
        assert f"{host}:{port}" == a.endpoints[0]
        with peer.connect(b.view, b.node, a.index) as out, listener.accept(timeout=10) as conn:
            out.sendall(b"hi")
            assert conn.recv(10) == b"hi"


def test_an_anonymous_cluster_client_reads_the_members_and_calls_one(xlreg_cluster: Any) -> None:
    c: LocalCluster = xlreg_cluster(2)
    a = c.members[1]
    members = xlreg.read_members(c.regcred, c.cluster_name)
    with peer.listen(a.view, a.node, a.take_listeners()[0], allow_anonymous=True) as listener:
        with peer.connect_anonymous(members, a.index) as out:
            assert out.peer == a.view.me  # the member proved who it is
            with listener.accept(timeout=10) as conn:
                assert conn.peer is None  # we are nobody in particular
                out.sendall(b"question")
                assert conn.recv(100) == b"question"


def refusal_pair(dial: Any, listener: Any) -> Any:
    """Dial in a thread while the listener accepts; both errors."""
    out: Dict[str, Optional[BaseException]] = {"dial": None}

    def run() -> None:
        try:
            dial().close()
        except BaseException as e:
            out["dial"] = e

    t = threading.Thread(target=run)
    t.start()
    with pytest.raises(xlreg.PeerRefusedError) as ei:
        listener.accept(timeout=10)
    t.join(20)
    return out["dial"], ei.value


def test_a_client_without_a_certificate_is_refused_by_default(xlreg_cluster: Any) -> None:
    c: LocalCluster = xlreg_cluster(2)
    a = c.members[0]
    members = xlreg.read_members(c.regcred, c.cluster_name)
    with peer.listen(a.view, a.node, a.take_listeners()[0]) as listener:
        dial_err, accept_err = refusal_pair(
            lambda: peer.connect_anonymous(members, a.index), listener
        )
    assert isinstance(dial_err, xlreg.PeerRefusedError), dial_err
    assert isinstance(dial_err, ConnectionError) and isinstance(dial_err, xlreg.XlRegError)
    assert dial_err.refused_by == "peer"
    assert accept_err.refused_by == "us"
    assert "no certificate" in accept_err.reason
    assert "certificate" in dial_err.reason, dial_err


def test_a_listener_with_the_wrong_key_is_refused_by_the_dialer(xlreg_cluster: Any) -> None:
    # Member 0 answers on member 1's endpoint: member 2, dialing member 1,
    # sees a key that is not member 1's.
    c: LocalCluster = xlreg_cluster(3)
    m0, m1, m2 = c.members
    with peer.listen(m0.view, m0.node, m1.take_listeners()[0]) as listener:
        dial_err, accept_err = refusal_pair(lambda: peer.connect(m2.view, m2.node, 1), listener)
    assert isinstance(dial_err, xlreg.PeerRefusedError), dial_err
    assert dial_err.refused_by == "us"
    assert "member 1" in dial_err.reason and "key" in dial_err.reason
    assert accept_err.refused_by == "peer"


def test_a_member_of_another_cluster_is_refused(xlreg_cluster: Any) -> None:
    a: LocalCluster = xlreg_cluster(2)
    b: LocalCluster = xlreg_cluster(2)
    # Cluster A's member 0 answers on cluster B's member 0 endpoint; B's
    # member 1 dials it.
    a0, b0, b1 = a.members[0], b.members[0], b.members[1]
    assert a0.node.sig_key_pem != b1.node.sig_key_pem  # the key pool keeps clusters apart
    with peer.listen(a0.view, a0.node, b0.take_listeners()[0]) as listener:
        dial_err, accept_err = refusal_pair(lambda: peer.connect(b1.view, b1.node, 0), listener)
    assert isinstance(dial_err, xlreg.PeerRefusedError), dial_err
    assert "cluster" in accept_err.reason or "key" in dial_err.reason


def test_a_python_listener_accepts_a_rust_dialer(
    xlreg_registry: LocalRegistry, xlreg_cmd: List[str], cli_env: dict
) -> None:
    rc = xlreg_registry.regcred
    xlreg.create_cluster(rc, "mixed-in", 2)
    sock = socket.create_server(("127.0.0.1", 0))
    node = xlreg.Node.generate(
        name="py", endpoints=[f"127.0.0.1:{sock.getsockname()[1]}"], key_bits=1024
    )
    rust = subprocess.Popen(
        [*xlreg_cmd, "peer", "send", "--regcred", str(xlreg_registry.regcred_path),
         "--cluster", "mixed-in", "--name", "rust", "--endpoint", "127.0.0.1:1",
         "--key-bits", "1024", "--to-name", "py", "--message", "hello from Rust"],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        view = xlreg.boot(rc, node, "mixed-in", wait=30)
        with peer.listen(view, node, sock) as listener, listener.accept(timeout=30) as conn:
            assert conn.peer is not None and conn.peer.name == "rust"
            assert peer.recv_message(conn) == b"hello from Rust"
        out, err = rust.communicate(timeout=30)
    finally:
        rust.kill()
        rust.wait()
    assert rust.returncode == 0, err
    assert "sent 15 bytes to member" in out


def test_a_python_dialer_reaches_a_rust_listener(
    xlreg_registry: LocalRegistry, xlreg_cmd: List[str], cli_env: dict
) -> None:
    rc = xlreg_registry.regcred
    xlreg.create_cluster(rc, "mixed-out", 2)
    port = free_port()
    rust = subprocess.Popen(
        [*xlreg_cmd, "peer", "listen", "--regcred", str(xlreg_registry.regcred_path),
         "--cluster", "mixed-out", "--name", "rust", "--endpoint", f"127.0.0.1:{port}",
         "--key-bits", "1024", "--count", "1", "--listen-for", "30"],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        node = xlreg.Node.generate(name="py", endpoints=["127.0.0.1:1"], key_bits=1024)
        view = xlreg.boot(rc, node, "mixed-out", wait=30)
        target = next(m for m in view.members if m.name == "rust")
        with peer.connect(view, node, target.index, timeout=20) as conn:
            assert conn.peer == target
            peer.send_message(conn, b"hello from Python")
        out, err = rust.communicate(timeout=30)
    finally:
        rust.kill()
        rust.wait()
    assert rust.returncode == 0, err
    assert f"member {view.self_index} (py)" in out and "hello from Python" in out, out


def test_a_bad_socket_argument_is_a_type_error(xlreg_cluster: Any) -> None:
    c: LocalCluster = xlreg_cluster(2)
    a = c.members[0]
    with pytest.raises(TypeError):
        peer.listen(a.view, a.node, "127.0.0.1:1")  # type: ignore[arg-type]
    with pytest.raises(xlreg.UsageError, match="no member 7"):
        peer.connect(a.view, a.node, 7)
