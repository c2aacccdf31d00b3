"""The asyncio streams of `xlreg.aio.peer` run on the event loop's own
socket transport, relayed to the TLS channel by a Rust task: half-close
each way against a blocking peer (write_eof is TLS close_notify), close
still sends what was buffered, abort drops the channel, the documented
extra info and nothing of the socket pair, the blocking calls refused on
a relayed connection; and the blocking `recv` (decrypted straight into
its `bytes`) returns exactly what arrived."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable, List

import pytest

import xlreg
import xlreg.aio
from xlreg import peer
from xlreg.testing import LocalCluster

BLOB = bytes(range(256)) * 8192  # 2 MiB


def recv_all(conn: peer.Connection) -> bytes:
    got = bytearray()
    while True:
        chunk = conn.recv(1 << 20)
        if not chunk:
            return bytes(got)
        got += chunk


def with_blocking_peer(
    c: LocalCluster, blocking: Callable[[peer.Connection], None], streams: Callable[..., Any]
) -> None:
    """Member 0 accepts in a thread and runs `blocking(conn)`; member 1
    dials with asyncio streams and runs `streams(reader, writer)`."""
    a, b = c.members
    errors: List[BaseException] = []
    with peer.listen(a.view, a.node, a.take_listeners()[0]) as listener:

        def accept() -> None:
            try:
                with listener.accept(timeout=20) as conn:
                    blocking(conn)
            except BaseException as e:
                errors.append(e)

        t = threading.Thread(target=accept)
        t.start()

        async def main() -> None:
            reader, writer = await xlreg.aio.peer.open_connection(b.view, b.node, a.index)
            try:
                await asyncio.wait_for(streams(reader, writer), 20)
            finally:
                writer.close()
                await writer.wait_closed()

        asyncio.run(main())
        t.join(30)
        assert not t.is_alive()
    assert not errors, errors


def test_streams_and_a_blocking_peer_half_close_each_way(xlreg_cluster: Any) -> None:
    got: List[bytes] = []

    def blocking(conn: peer.Connection) -> None:
        conn.sendall(b"hello")
        conn.shutdown()  # close_notify: the stream reads EOF
        got.append(recv_all(conn))  # ours is still open

    async def streams(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.read() == b"hello"
        assert reader.at_eof()
        writer.write(BLOB)
        await writer.drain()
        writer.write_eof()  # close_notify: the peer's recv returns b""

    with_blocking_peer(xlreg_cluster(2), blocking, streams)
    assert got == [BLOB]


def test_close_sends_what_was_buffered_then_close_notify(xlreg_cluster: Any) -> None:
    got: List[bytes] = []

    async def streams(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(BLOB)
        writer.close()  # no drain first

    with_blocking_peer(xlreg_cluster(2), lambda conn: got.append(recv_all(conn)), streams)
    assert got == [BLOB]


def test_abort_drops_the_channel(xlreg_cluster: Any) -> None:
    ended: List[Any] = []

    def blocking(conn: peer.Connection) -> None:
        conn.sendall(b"x")
        try:
            ended.append(conn.recv(100))
        except xlreg.XlRegError as e:
            ended.append(e)

    async def streams(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readexactly(1) == b"x"
        conn = writer.get_extra_info("connection")
        writer.transport.abort()
        t0 = time.monotonic()
        while not conn.closed and time.monotonic() - t0 < 10:
            await asyncio.sleep(0.01)
        assert conn.closed

    with_blocking_peer(xlreg_cluster(2), blocking, streams)
    # The peer sees the channel end (no bytes), cleanly or as an error.
    assert len(ended) == 1
    assert ended[0] == b"" or isinstance(ended[0], xlreg.XlRegError)


def test_extra_info_is_the_channels_and_blocking_calls_are_refused(xlreg_cluster: Any) -> None:
    c: LocalCluster = xlreg_cluster(2)
    a = c.members[0]

    async def streams(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert writer.get_extra_info("peer").index == a.index
        host, port = writer.get_extra_info("peername")
        assert host == "127.0.0.1" and port > 0
        conn = writer.get_extra_info("connection")
        assert isinstance(conn, xlreg.peer.Connection)
        assert writer.get_extra_info("handshake_time") == conn.handshake_time > 0
        # The socket pair under the streams is none of the channel's.
        assert writer.get_extra_info("socket") is None
        assert writer.get_extra_info("sockname") is None
        for call in (lambda: conn.recv(1), lambda: conn.sendall(b"x"), conn.shutdown):
            with pytest.raises(xlreg.UsageError, match="belongs to its asyncio streams"):
                call()
        assert not conn.closed
        writer.write(b"still fine")
        await writer.drain()

    got: List[bytes] = []
    with_blocking_peer(c, lambda conn: got.append(recv_all(conn)), streams)
    assert got == [b"still fine"]


def test_streams_run_on_uvloop_both_ends_with_the_peer_in_extra_info(xlreg_cluster: Any) -> None:
    """uvloop's transports are not asyncio.Transport subclasses: the relay
    wraps them by their methods (it used to assert the class and fail in
    connection_made, so neither end ever got its streams)."""
    uvloop = pytest.importorskip("uvloop")
    c = xlreg_cluster(2)
    a, b = c.members
    sock = a.take_listeners()[0]
    seen: List[Any] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peer"))
        writer.write(await reader.readexactly(len(BLOB)))
        await writer.drain()
        writer.close()

    async def main() -> bytes:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        async with await xlreg.aio.peer.start_server(echo, a.view, a.node, sock):
            reader, writer = await xlreg.aio.peer.open_connection(b.view, b.node, a.index)
            try:
                assert writer.get_extra_info("peer").id == a.node.id
                writer.write(BLOB)
                await writer.drain()
                return await asyncio.wait_for(reader.readexactly(len(BLOB)), 20)
            finally:
                writer.close()
                await writer.wait_closed()

    assert uvloop.run(main()) == BLOB
    assert [m.id for m in seen] == [b.node.id]
