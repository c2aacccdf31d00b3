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
:class:`asyncio.StreamWriter` over the event loop's own socket transport on
one end of a UNIX socket pair; a Rust task relays the other end through the
channel (TLS and pinning happen there, beside the loop's thread; the event
loop never blocks, and the kernel's socket buffers carry the
back-pressure). A channel failure reaches the protocol as its exception
(``connection_lost``), not as a bare end of the stream. Once relayed, the
:class:`xlreg.peer.Connection` (``"connection"``) refuses its blocking
calls; ``abort()`` drops the channel, ``close()`` still sends what was
buffered, then TLS close_notify.
Any asyncio event loop works (uvloop's included).
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
from typing import Any, Awaitable, Callable, List, Optional, Set, Tuple, Union, cast

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

#: Buffered outgoing bytes above which ``drain()`` waits.
HIGH_WATER = 1 << 20
LOW_WATER = 1 << 18
#: The StreamReader limit (its buffer pauses reading at twice this).
STREAM_LIMIT = 1 << 20
#: SO_SNDBUF of both ends of the relay's socket pair (the kernel caps it at
#: net.core.wmem_max): room for a few batches, so the loop's transport
#: rarely has to buffer a write.
SOCKET_BUFFER = 1 << 21

ClientConnected = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter], Union[None, Awaitable[None]]
]


class _Relayed(asyncio.Protocol):
    """Between the loop's socket transport (on our end of the socket pair
    the Rust relay serves) and the stream protocol: hands the protocol the
    :class:`_PeerTransport` instead, and reports a channel failure (kept by
    the relay before it closed the socket) instead of a bare EOF or reset."""

    def __init__(self, conn: Connection, protocol: asyncio.Protocol) -> None:
        self.conn = conn
        self.protocol = protocol
        self.transport: Optional["_PeerTransport"] = None
        self._failure: Optional[Exception] = None

    def _failed(self) -> Optional[Exception]:
        if self._failure is None:
            self._failure = self.conn._relay_failure()
        return self._failure

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Duck-typed: uvloop's transports are not asyncio.Transport
        # subclasses, yet have every method the wrapper forwards.
        inner = cast(asyncio.Transport, transport)
        inner.set_write_buffer_limits(HIGH_WATER, LOW_WATER)
        self.transport = _PeerTransport(inner, self)
        self.protocol.connection_made(self.transport)

    def data_received(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def eof_received(self) -> Optional[bool]:
        if self._failed() is not None:
            return False  # the transport closes; connection_lost reports it
        return self.protocol.eof_received()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        # Our socket is closed: the relay sends what it still holds from
        # us, then close_notify, and stops reading from the peer.
        self.conn._relay_stop(False)
        failure = self._failed()
        self.protocol.connection_lost(failure if failure is not None else exc)

    def pause_writing(self) -> None:
        self.protocol.pause_writing()

    def resume_writing(self) -> None:
        self.protocol.resume_writing()


class _PeerTransport(asyncio.Transport):
    """The streams' transport: the loop's socket transport on our end of
    the relay's socket pair, with the channel's extra info, ``write_eof``
    as TLS close_notify (the relay sends it when our socket's write side
    ends) and ``abort`` dropping the channel."""

    def __init__(self, inner: asyncio.Transport, relayed: _Relayed) -> None:
        conn = relayed.conn
        super().__init__(
            extra={
                "peer": conn.peer,
                "peername": conn.peer_address,
                "connection": conn,
                "handshake_time": conn.handshake_time,
            }
        )
        self._inner = inner
        self._relayed = relayed

    # asyncio.WriteTransport
    def write(self, data: Any) -> None:
        self._inner.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._inner.writelines(list_of_data)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self._inner.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._inner.get_write_buffer_size()

    def get_write_buffer_limits(self) -> Tuple[int, int]:
        return self._inner.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        self._inner.set_write_buffer_limits(high, low)

    def abort(self) -> None:
        self._relayed.conn._relay_stop(True)
        self._inner.abort()

    # asyncio.ReadTransport
    def pause_reading(self) -> None:
        self._inner.pause_reading()

    def resume_reading(self) -> None:
        self._inner.resume_reading()

    def is_reading(self) -> bool:
        return self._inner.is_reading()

    # asyncio.BaseTransport
    def close(self) -> None:
        """Send what is buffered, then close."""
        self._inner.close()

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._relayed.protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._relayed.protocol = protocol  # type: ignore[assignment]


async def _streams(conn: Connection) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    relayed = _Relayed(conn, protocol)
    sock, theirs = socket.socketpair()
    try:
        for s in (sock, theirs):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        conn._relay(theirs.detach())
        await loop.create_unix_connection(lambda: relayed, sock=sock)
    except BaseException:
        sock.close()
        theirs.close()
        conn._relay_stop(True)
        raise
    assert relayed.transport is not None
    writer = asyncio.StreamWriter(relayed.transport, protocol, reader, loop)
    return reader, writer


async def open_connection(
    view: ClusterView, node: Node, index: int, timeout: float = 10.0, *, endpoint: int = 0
) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Dial member ``index`` of ``view``'s cluster as ``node`` (see
    :func:`xlreg.peer.connect`); returns the stream pair once the other end
    is authenticated and accepted us."""
    conn = await _peer_connect_async(view, node, index, timeout, endpoint=endpoint)
    return await _streams(conn)


async def open_anonymous_connection(
    members: MemberList, index: int, timeout: float = 10.0, *, endpoint: int = 0
) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Dial member ``index`` as a client that is not a member (see
    :func:`xlreg.peer.connect_anonymous`)."""
    conn = await _peer_connect_anonymous_async(members, index, timeout, endpoint=endpoint)
    return await _streams(conn)


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
                reader, writer = await _streams(conn)
            except (XlRegError, OSError) as e:
                if self._listener.closed:
                    return
                self._errors.append(e)
                del self._errors[:-100]
                continue
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

