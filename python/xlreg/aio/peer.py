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
:class:`asyncio.StreamWriter` over a transport fed in process by a Rust
task that relays the channel (TLS and pinning happen there, beside the
loop's thread; the event loop never blocks). The loop watches one wake
socket per connection and gets whatever arrived in one batch per wake;
a write is copied into the relay's queue, and ``drain()`` waits while more
than 1 MiB of it is not sent yet. A channel failure reaches the protocol as its exception
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

#: Buffered outgoing bytes above which ``drain()`` waits, and below which
#: it goes on (``set_write_buffer_limits`` changes them per transport).
HIGH_WATER = 1 << 20
LOW_WATER = 1 << 18
#: The StreamReader limit (its buffer pauses reading at twice this).
STREAM_LIMIT = 1 << 20

ClientConnected = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter], Union[None, Awaitable[None]]
]


class _PeerTransport(asyncio.Transport):
    """The streams' transport, driven by the channel's relay in process:
    the loop watches the relay's wake socket, and each wake hands the
    protocol everything that arrived (and the peer's end, or the channel's
    failure as ``connection_lost``'s exception); ``write`` copies into the
    relay's outgoing queue, which a Rust task encrypts beside the loop.
    ``write_eof`` is TLS close_notify once what was written is sent;
    ``close`` stops reading, sends what was written, then close_notify;
    ``abort`` drops the channel."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, conn: Connection, protocol: asyncio.Protocol
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
        self._protocol = protocol
        # The stream reader copies what it is fed at once (bytearray
        # extend), so it may be handed the relay's lent memoryview; any
        # other protocol gets bytes.
        self._feeds_copies = type(protocol) is asyncio.StreamReaderProtocol
        self._relay = conn._relay()
        self._fd = self._relay.fileno()
        self._closing = False
        self._lost = False
        self._eof_written = False
        self._reading = True
        self._high = HIGH_WATER
        self._low = LOW_WATER
        self._relay.set_limits(HIGH_WATER, LOW_WATER)
        protocol.connection_made(self)
        loop.add_reader(self._fd, self._news)

    def _news(self) -> None:
        if self._lost:
            return
        try:
            data, ended, failure, resume = self._relay.poll(self._reading and not self._closing)
            if data is not None:
                try:
                    self._protocol.data_received(
                        cast(bytes, data) if self._feeds_copies else bytes(data)
                    )
                finally:
                    data.release()  # the relay may reuse its buffer
            if resume and not self._closing:
                self._protocol.resume_writing()
            if failure is not None:
                self._end(failure, abort=True)
                return
            if ended and not self._closing and not self._protocol.eof_received():
                self.close()
        except Exception as exc:  # the protocol's own failure
            self._end(exc, abort=True)

    def _end(self, exc: Optional[Exception], abort: bool) -> None:
        """Stop watching the relay; connection_lost(exc) on the next turn
        of the loop (once)."""
        if abort:
            self._relay.abort()
        if self._lost:
            return
        self._closing = True
        self._lost = True
        self._loop.remove_reader(self._fd)
        self._loop.call_soon(self._protocol.connection_lost, exc)

    # asyncio.WriteTransport
    def write(self, data: Any) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expected a bytes-like object, not {type(data).__name__}")
        if self._eof_written:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._closing or not data:
            return
        # A bytes object is held by the relay, not copied (it cannot change).
        if self._relay.write(data if isinstance(data, (bytes, bytearray)) else bytes(data)):
            self._protocol.pause_writing()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._closing or self._eof_written:
            return
        self._eof_written = True
        self._relay.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._relay.buffer_size()

    def get_write_buffer_limits(self) -> Tuple[int, int]:
        return (self._low, self._high)

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._relay.set_limits(high, low)

    def abort(self) -> None:
        """Drop the channel now (what was written and not sent is lost)."""
        self._end(None, abort=True)

    # asyncio.ReadTransport
    def pause_reading(self) -> None:
        self._reading = False

    def resume_reading(self) -> None:
        if self._reading:
            return
        self._reading = True
        if not self._closing:
            self._loop.call_soon(self._news)  # what waited in the relay

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    # asyncio.BaseTransport
    def close(self) -> None:
        """Stop reading; send what was written, then TLS close_notify."""
        if self._closing:
            return
        self._relay.close()
        self._end(None, abort=False)

    def is_closing(self) -> bool:
        return self._closing

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]
        self._feeds_copies = False


async def _streams(conn: Connection) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
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

