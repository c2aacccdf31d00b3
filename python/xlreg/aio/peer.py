"""The members' encrypted channel (:mod:`xlreg.peer`) as asyncio streams.

::

    async def handle(reader, writer):
        peer = writer.get_extra_info("peer")      # xlreg.Member, or None
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    server = await xlreg.aio.peer.start_server(handle, view, node)
    reader, writer = await xlreg.aio.peer.open_connection(view, node, 1)

The streams are the standard :class:`asyncio.StreamReader` and
:class:`asyncio.StreamWriter` over a transport whose bytes go through the
Rust channel (TLS and pinning happen there; the event loop never blocks).
``writer.get_extra_info`` knows ``"peer"`` (the :class:`xlreg.Member`
proven on the other end, None for an anonymous client), ``"peername"``,
``"connection"`` (the :class:`xlreg.peer.Connection`) and
``"handshake_time"``. ``writer.write_eof()`` ends our direction (TLS
close_notify).

:func:`send_message` and :func:`recv_message` speak the framing of ``xlreg
peer send`` / ``listen`` (see :mod:`xlreg.peer`).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any, Awaitable, Callable, List, Optional, Set, Tuple, Union

from .._errors import ProtocolError, UsageError
from .._xlreg import (
    ClusterView,
    Connection,
    Listener,
    MemberList,
    Node,
    _peer_connect_anonymous_async,
    _peer_connect_async,
)
from ..peer import MAX_MESSAGE, RECEIVED, listen

__all__ = [
    "PeerServer",
    "open_anonymous_connection",
    "open_connection",
    "recv_message",
    "send_message",
    "start_server",
]

#: Bytes read from the channel per step.
READ_CHUNK = 1 << 18
#: Buffered outgoing bytes above which ``drain()`` waits.
HIGH_WATER = 1 << 20
LOW_WATER = 1 << 18
#: The StreamReader limit (its buffer pauses reading at twice this).
STREAM_LIMIT = 1 << 20

ClientConnected = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter], Union[None, Awaitable[None]]
]


class _PeerTransport(asyncio.Transport):
    """An asyncio transport over a :class:`xlreg.peer.Connection`: a
    reader task feeds the protocol, a writer task sends the buffered
    bytes."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: Connection,
        protocol: asyncio.Protocol,
    ) -> None:
        super().__init__(
            extra={
                "peer": conn.peer,
                "peername": conn.peer_address,
                "connection": conn,
                "handshake_time": conn.handshake_time,
            }
        )
        self._loop = loop
        self._conn = conn
        self._protocol = protocol
        self._buffer: List[bytes] = []
        self._buffered = 0
        self._write_paused = False
        self._eof_wanted = False
        self._eof_sent = False
        self._closing = False
        self._lost = False
        self._reading = asyncio.Event()
        self._reading.set()
        self._wake_writer = asyncio.Event()
        protocol.connection_made(self)
        self._reader = loop.create_task(self._read_loop())
        self._writer = loop.create_task(self._write_loop())

    async def _read_loop(self) -> None:
        try:
            while True:
                await self._reading.wait()
                data = await self._conn._recv_async(READ_CHUNK)
                if not data:
                    keep_open = self._protocol.eof_received()
                    if not keep_open:
                        self.close()
                    return
                self._protocol.data_received(data)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the channel failed: the protocol learns it
            self._lose(e)

    async def _write_loop(self) -> None:
        try:
            while True:
                while self._buffer:
                    data = b"".join(self._buffer)
                    self._buffer.clear()
                    await self._conn._sendall_async(data)
                    self._buffered -= len(data)
                    if self._write_paused and self._buffered <= LOW_WATER:
                        self._write_paused = False
                        self._protocol.resume_writing()
                if self._eof_wanted and not self._eof_sent:
                    self._eof_sent = True
                    await self._conn._shutdown_async()
                if self._closing:
                    self._lose(None)
                    return
                self._wake_writer.clear()
                await self._wake_writer.wait()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._lose(e)

    def _lose(self, exc: Optional[Exception]) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        current = asyncio.current_task()
        for t in (self._reader, self._writer):
            if t is not current:
                t.cancel()
        self._loop.create_task(self._finish(exc))

    async def _finish(self, exc: Optional[Exception]) -> None:
        try:
            await self._conn._close_async()
        finally:
            self._protocol.connection_lost(exc)

    # asyncio.WriteTransport
    def write(self, data: Any) -> None:
        if self._eof_wanted:
            raise RuntimeError("cannot write after write_eof()")
        if self._closing:
            return
        data = bytes(data)
        if not data:
            return
        self._buffer.append(data)
        self._buffered += len(data)
        self._wake_writer.set()
        if not self._write_paused and self._buffered > HIGH_WATER:
            self._write_paused = True
            self._protocol.pause_writing()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self._eof_wanted = True
        self._wake_writer.set()

    def get_write_buffer_size(self) -> int:
        return self._buffered

    def get_write_buffer_limits(self) -> Tuple[int, int]:
        return (LOW_WATER, HIGH_WATER)

    def abort(self) -> None:
        self._buffer.clear()
        self._lose(None)

    # asyncio.ReadTransport
    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def is_reading(self) -> bool:
        return self._reading.is_set() and not self._closing

    # asyncio.BaseTransport
    def close(self) -> None:
        """Send what is buffered, then close."""
        if self._closing:
            return
        self._closing = True
        self._wake_writer.set()

    def is_closing(self) -> bool:
        return self._closing

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]


def _streams(conn: Connection) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = _PeerTransport(loop, conn, protocol)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def open_connection(
    view: ClusterView, node: Node, index: int, timeout: float = 10.0, *, endpoint: int = 0
) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Dial member ``index`` of ``view``'s cluster as ``node`` (see
    :func:`xlreg.peer.connect`); returns the stream pair once the other end
    is authenticated and accepted us."""
    conn = await _peer_connect_async(view, node, index, timeout, endpoint=endpoint)
    return _streams(conn)


async def open_anonymous_connection(
    members: MemberList, index: int, timeout: float = 10.0, *, endpoint: int = 0
) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Dial member ``index`` as a client that is not a member (see
    :func:`xlreg.peer.connect_anonymous`)."""
    conn = await _peer_connect_anonymous_async(members, index, timeout, endpoint=endpoint)
    return _streams(conn)


class PeerServer:
    """What :func:`start_server` returns: accepts peers until
    :meth:`close`. An async context manager."""

    def __init__(self, listener: Listener, callback: ClientConnected) -> None:
        self._listener = listener
        self._callback = callback
        self._handlers: Set["asyncio.Task[None]"] = set()
        self._errors: List[BaseException] = []
        self._task = asyncio.get_running_loop().create_task(self._serve())

    @property
    def address(self) -> Tuple[str, int]:
        """The ``(host, port)`` listened on."""
        return self._listener.address

    @property
    def refusals(self) -> List[BaseException]:
        """Dialers refused so far (each a :class:`xlreg.PeerRefusedError`
        or another channel error), oldest first (at most 100 kept)."""
        return list(self._errors)

    async def _serve(self) -> None:
        from .._errors import XlRegError

        loop = asyncio.get_running_loop()
        while True:
            try:
                conn = await self._listener._accept_async()
            except XlRegError as e:
                if self._listener.closed:
                    return
                self._errors.append(e)
                del self._errors[:-100]
                continue
            reader, writer = _streams(conn)
            r = self._callback(reader, writer)
            if asyncio.iscoroutine(r):
                t = loop.create_task(r)
                self._handlers.add(t)
                t.add_done_callback(self._handlers.discard)

    def is_serving(self) -> bool:
        """True until :meth:`close`."""
        return not self._listener.closed

    def close(self) -> None:
        """Stop accepting (connections already made stay open)."""
        self._listener.close()
        self._task.cancel()

    async def wait_closed(self) -> None:
        """Wait until the accept loop has ended."""
        try:
            await self._task
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise

    async def __aenter__(self) -> "PeerServer":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
        await self.wait_closed()


async def start_server(
    client_connected_cb: ClientConnected,
    view: ClusterView,
    node: Node,
    sock: Optional[socket.socket] = None,
    allow_anonymous: bool = False,
) -> PeerServer:
    """Listen as ``node`` (see :func:`xlreg.peer.listen`) and call
    ``client_connected_cb(reader, writer)`` (a function or a coroutine
    function) for every authenticated peer; ``writer.get_extra_info("peer")``
    is its :class:`xlreg.Member` (None for an anonymous client)."""
    return PeerServer(listen(view, node, sock, allow_anonymous), client_connected_cb)


async def send_message(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> None:
    """Send one message in the ``xlreg peer`` framing and wait for ``K``."""
    if len(data) > MAX_MESSAGE:
        raise UsageError(f"the message is {len(data)} bytes; at most {MAX_MESSAGE}")
    writer.write(struct.pack(">I", len(data)) + bytes(data))
    await writer.drain()
    try:
        answer = await reader.readexactly(1)
    except asyncio.IncompleteReadError:
        raise ProtocolError("the peer ended its direction instead of confirming the message") from None
    if answer != RECEIVED:
        raise ProtocolError(f"the peer answered {answer!r} instead of confirming the message")


async def recv_message(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """Receive one message in the ``xlreg peer`` framing and confirm it."""
    try:
        (n,) = struct.unpack(">I", await reader.readexactly(4))
        if n > MAX_MESSAGE:
            raise ProtocolError(f"the peer announced a message of {n} bytes; at most {MAX_MESSAGE}")
        data = await reader.readexactly(n)
    except asyncio.IncompleteReadError as e:
        raise ProtocolError(f"the peer ended its direction mid-message ({len(e.partial)} bytes read)") from None
    writer.write(RECEIVED)
    await writer.drain()
    return data

