"""The asyncio streams of `xlreg.aio.peer` run on a transport fed in
process by the Rust task that relays the TLS channel: half-close each way
against a blocking peer (write_eof is TLS close_notify), close still sends
what was buffered (even once every Python object is gone), abort drops the
channel, back-pressure both ways (a writer ahead of its peer waits in
``drain()``, a reader that does not read stops the peer's sends), a
channel failure reaches the reader as an exception, the documented extra
info, the blocking calls refused on a relayed connection; and the blocking
`recv` (decrypted straight into its `bytes`) returns exactly what
arrived."""

from __future__ import annotations

import asyncio
import gc
import select
import threading
import time
from typing import Any, Callable, List

import pytest

import xlreg
import xlreg.aio
from xlreg import peer
from xlreg._xlreg import _peer_connect_async
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
    c: LocalCluster,
    blocking: Callable[[peer.Connection], None],
    streams: Callable[..., Any],
    closed_raises: bool = False,
) -> None:
    """Member 0 accepts in a thread and runs `blocking(conn)`; member 1
    dials with asyncio streams and runs `streams(reader, writer)`; then
    the writer closes (and `wait_closed` raises the channel's failure if
    `closed_raises`)."""
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
                if closed_raises:
                    with pytest.raises(xlreg.XlRegError):
                        await writer.wait_closed()
                else:
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


def test_a_blocking_connection_cannot_be_relayed(xlreg_cluster: Any) -> None:
    """A connection from the blocking calls has its own runtime, driven by
    the thread that blocks on it; the asyncio relay refuses it (by name)."""
    c: LocalCluster = xlreg_cluster(2)
    a, b = c.members
    with peer.listen(a.view, a.node, a.take_listeners()[0]) as listener:
        t = threading.Thread(target=lambda: listener.accept(timeout=20).close())
        t.start()
        with peer.connect(b.view, b.node, a.index) as conn:
            with pytest.raises(xlreg.UsageError, match="made by the blocking calls"):
                conn._relay()
        t.join(30)


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
        # No socket of the loop's is under the streams.
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
    """The transport needs of the loop only ``add_reader`` and
    ``call_soon``, which uvloop has (an earlier relay wrapped the loop's own
    socket transport, and once failed on uvloop's, which are not
    asyncio.Transport subclasses)."""
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


BIG = 32 << 20  # more than any socket buffers of the loopback hold


def test_close_sends_what_was_written_after_every_python_object_is_gone(
    xlreg_cluster: Any,
) -> None:
    """After ``close()`` the relay task owns the channel: dropping the
    streams, the transport and the connection at once does not cut off
    what was written (8 MiB, never drained) nor the close_notify after it."""
    c: LocalCluster = xlreg_cluster(2)
    a, b = c.members
    blob = bytes(range(256)) * (8 << 12)  # 8 MiB
    got: List[bytes] = []
    with peer.listen(a.view, a.node, a.take_listeners()[0]) as listener:
        t = threading.Thread(target=lambda: got.append(recv_all(listener.accept(timeout=20))))
        t.start()

        async def main() -> None:
            reader, writer = await xlreg.aio.peer.open_connection(b.view, b.node, a.index)
            writer.write(blob)
            assert writer.transport.get_write_buffer_size() > 0
            writer.close()
            del reader, writer
            gc.collect()

        asyncio.run(main())
        gc.collect()
        t.join(30)
        assert not t.is_alive()
    assert [len(g) for g in got] == [len(blob)]
    assert got[0] == blob


def test_a_writer_ahead_of_its_peer_waits_in_drain_until_the_peer_reads(
    xlreg_cluster: Any,
) -> None:
    go = threading.Event()
    got: List[bytes] = []
    sizes: List[int] = []

    def blocking(conn: peer.Connection) -> None:
        go.wait(20)
        got.append(recv_all(conn))

    async def streams(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        blob = b"\x5a" * BIG
        writer.write(blob)
        sizes.append(writer.transport.get_write_buffer_size())
        drained = asyncio.ensure_future(writer.drain())
        await asyncio.sleep(0.5)
        # The peer reads nothing: the socket buffers hold a few MiB, and
        # the rest waits in the relay, above the high-water mark.
        sizes.append(writer.transport.get_write_buffer_size())
        assert not drained.done()
        go.set()
        await asyncio.wait_for(drained, 20)
        sizes.append(writer.transport.get_write_buffer_size())
        writer.write_eof()

    with_blocking_peer(xlreg_cluster(2), blocking, streams)
    assert got == [b"\x5a" * BIG]
    assert sizes[0] == BIG
    assert sizes[1] > xlreg.aio.peer.HIGH_WATER
    assert sizes[2] <= xlreg.aio.peer.LOW_WATER


def test_a_reader_that_does_not_read_stops_the_peers_sends(xlreg_cluster: Any) -> None:
    """The relay stops reading from the TLS stream while 1 MiB waits for
    Python, and the stream pauses the transport at twice its limit: the
    peer's ``sendall`` of 32 MiB cannot finish before the reader reads."""
    sent = threading.Event()

    def blocking(conn: peer.Connection) -> None:
        conn.sendall(b"\xa5" * BIG)
        sent.set()
        conn.shutdown()

    async def streams(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.7)
        assert not sent.is_set()
        assert await reader.read() == b"\xa5" * BIG
        assert sent.is_set()

    with_blocking_peer(xlreg_cluster(2), blocking, streams)


def test_a_channel_failure_reaches_the_reader_as_an_exception_not_an_end(
    xlreg_cluster: Any,
) -> None:
    """The peer's TCP connection is reset (it closes with our bytes unread
    in its socket): what arrived before is read, then the stream raises the
    channel's error instead of returning a clean end."""
    written = threading.Event()
    raised: List[BaseException] = []

    def blocking(conn: peer.Connection) -> None:
        conn.sendall(b"last words")
        written.wait(20)
        time.sleep(0.3)  # our 64 KiB are in its socket, unread
        conn.close()

    async def streams(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readexactly(10) == b"last words"
        writer.write(b"\x00" * 65536)
        await writer.drain()
        written.set()
        with pytest.raises(xlreg.XlRegError) as e:
            await asyncio.wait_for(reader.read(), 10)
        raised.append(e.value)

    with_blocking_peer(xlreg_cluster(2), blocking, streams, closed_raises=True)
    assert len(raised) == 1


def test_a_protocol_set_on_the_transport_gets_bytes_and_the_end(xlreg_cluster: Any) -> None:
    """The stream reader is fed the relay's buffer as a memoryview it
    copies at once; a protocol of the user's own (``set_protocol``) gets
    ``bytes`` it may keep, then ``eof_received``."""

    class Keeper(asyncio.Protocol):
        def __init__(self) -> None:
            self.chunks: List[Any] = []
            self.ended = asyncio.get_running_loop().create_future()

        def data_received(self, data: bytes) -> None:
            self.chunks.append(data)

        def eof_received(self) -> bool:
            self.ended.set_result(True)
            return True

    c: LocalCluster = xlreg_cluster(2)
    a, b = c.members
    swapped = threading.Event()
    with peer.listen(a.view, a.node, a.take_listeners()[0]) as listener:

        def blocking() -> None:
            with listener.accept(timeout=20) as conn:
                swapped.wait(20)
                conn.sendall(BLOB)
                conn.shutdown()
                conn.recv(1)  # until the other end closes

        t = threading.Thread(target=blocking)
        t.start()

        async def main() -> List[Any]:
            _, writer = await xlreg.aio.peer.open_connection(b.view, b.node, a.index)
            keeper = Keeper()
            writer.transport.set_protocol(keeper)
            swapped.set()
            await asyncio.wait_for(keeper.ended, 20)
            writer.transport.close()  # the stream protocol is out of the loop
            return keeper.chunks

        kept = asyncio.run(main())
        t.join(30)
        assert not t.is_alive()
    assert kept and all(type(c) is bytes for c in kept)
    assert b"".join(kept) == BLOB


def test_a_view_the_relay_lent_is_never_reused_while_unreleased(xlreg_cluster: Any) -> None:
    """The rule under the stream reader's fast path (the private relay
    API): ``poll`` lends a memoryview over the relay's buffer; a view
    Python did not release keeps its bytes while later data arrives in
    later views, and after the relay itself is gone; a released one
    refuses access."""
    c: LocalCluster = xlreg_cluster(2)
    a, b = c.members
    more = threading.Event()
    done = threading.Event()
    expected = b"A" * 300_000 + b"B" * 2_400_000
    with peer.listen(a.view, a.node, a.take_listeners()[0]) as listener:

        def blocking() -> None:
            with listener.accept(timeout=20) as conn:
                conn.sendall(b"A" * 300_000)
                more.wait(20)
                for _ in range(8):
                    conn.sendall(b"B" * 300_000)
                done.wait(20)

        t = threading.Thread(target=blocking)
        t.start()

        async def dial() -> peer.Connection:  # a connection made for asyncio
            return await _peer_connect_async(b.view, b.node, a.index)

        conn = asyncio.run(dial())
        relay = conn._relay()
        views: List[memoryview] = []
        deadline = time.monotonic() + 20
        while sum(len(v) for v in views) < len(expected) and time.monotonic() < deadline:
            select.select([relay.fileno()], [], [], 0.5)
            data, ended, failure, _ = relay.poll(True)
            assert failure is None and not ended
            if data is not None:
                views.append(data)
                more.set()
        assert b"".join(bytes(v) for v in views) == expected
        first = views[0]
        first.release()
        with pytest.raises(ValueError):
            bytes(first)
        # The last view is still lent when the relay goes.
        last = views[-1]
        del relay, conn
        gc.collect()
        churn = [bytearray(b"\xee" * 300_000) for _ in range(4 * len(views))]
        assert bytes(last) == b"B" * len(last)
        del churn
        done.set()
        t.join(30)
        assert not t.is_alive()
