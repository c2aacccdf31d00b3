"""The members' encrypted channel: mutually authenticated TLS 1.3 with the
keys the registry lists, the same channel as Rust's ``xlreg::peer``.

Why: registering keys is only useful if members can then talk securely
without further help. Each side presents a certificate made in memory from
its registered sig key and pins the other side's certificate key to the
sig key the registry lists for that member; the connection is bound to
the cluster, so a member of another cluster (or someone without a
registered key) is refused with :class:`xlreg.PeerRefusedError`. Python
and Rust members interoperate both ways.

A member listens on its endpoint and its peers dial it by cluster index::

    with xlreg.peer.listen(view, node) as listener:      # member 0
        with listener.accept(timeout=30) as conn:
            print(conn.peer.name, conn.recv(65536))

    with xlreg.peer.connect(view, node, 0) as conn:      # another member
        conn.sendall(b"hello")

A client that is not a member reads the members (:func:`xlreg.read_members`)
and dials with :func:`connect_anonymous`; the member must listen with
``allow_anonymous=True`` and still proves who it is.

Blocking calls release the GIL and honour Ctrl-C. :mod:`xlreg.aio.peer` has
the same channel as asyncio streams.

:func:`send_message` and :func:`recv_message` speak the framing of ``xlreg
peer send`` / ``xlreg peer listen`` / ``xlreg peer ring``: a 4-byte
big-endian length, the bytes (at most 1 MiB), and the receiver's one-byte
answer ``K`` once it has them all.
"""

from __future__ import annotations

import socket
import struct
from typing import Optional

from ._errors import ProtocolError, UsageError
from ._xlreg import (
    ClusterView,
    Connection,
    Listener,
    MemberList,
    Node,
    _peer_connect,
    _peer_connect_anonymous,
    _peer_listen,
)

__all__ = [
    "Connection",
    "Listener",
    "MAX_MESSAGE",
    "connect",
    "connect_anonymous",
    "listen",
    "recv_message",
    "send_message",
]

#: Largest message :func:`recv_message` accepts (as ``xlreg peer listen``).
MAX_MESSAGE = 1 << 20

#: The receiver's answer once a message arrived whole.
RECEIVED = b"K"


def _listening_fd(sock: socket.socket) -> int:
    """Take over a listening TCP socket's file descriptor."""
    if not isinstance(sock, socket.socket):
        raise TypeError(f"sock must be a socket.socket, not {type(sock).__name__}")
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        raise UsageError(f"sock must be a TCP socket, not {sock!r}")
    if sock.fileno() < 0:
        raise UsageError("sock is closed")
    return sock.detach()


def listen(
    view: ClusterView,
    node: Node,
    sock: Optional[socket.socket] = None,
    allow_anonymous: bool = False,
) -> Listener:
    """Listen as ``node`` (member ``view.self_index`` of ``view``'s cluster).

    ``sock``: a bound, listening TCP ``socket.socket`` (e.g. from
    :meth:`xlreg.testing.LocalMember.take_listeners`, or one bound before
    booting so peers can dial as soon as they learn the endpoint); the
    listener takes it over (it is detached from ``sock``). ``None`` binds
    the member's first registered endpoint. Members of the cluster are
    accepted; clients without a certificate only with
    ``allow_anonymous=True``.
    """
    fd = None if sock is None else _listening_fd(sock)
    return _peer_listen(view, node, fd, allow_anonymous)


def connect(
    view: ClusterView, node: Node, index: int, timeout: float = 10.0, *, endpoint: int = 0
) -> Connection:
    """Dial member ``index`` of ``view``'s cluster as ``node`` (a member).

    Returns once the other end proved it holds the sig key the registry
    lists for that member and accepted us; retries while nothing listens
    yet, up to ``timeout`` seconds for connecting and the handshake
    (:class:`xlreg.PeerTimeoutError` after it). ``endpoint`` picks which of
    its endpoints to dial.
    """
    return _peer_connect(view, node, index, timeout, endpoint=endpoint)


def connect_anonymous(
    members: MemberList, index: int, timeout: float = 10.0, *, endpoint: int = 0
) -> Connection:
    """Dial member ``index`` as a client that is not a member (no
    certificate), with ``members`` from :func:`xlreg.read_members`. The
    member proves who it is; it accepts us only if it listens with
    ``allow_anonymous=True`` (else :class:`xlreg.PeerRefusedError`)."""
    return _peer_connect_anonymous(members, index, timeout, endpoint=endpoint)


def _recv_exactly(conn: Connection, n: int) -> bytes:
    parts = []
    while n > 0:
        b = conn.recv(min(n, 1 << 20))
        if not b:
            raise ProtocolError(f"{conn!r} ended its direction with {n} bytes of a message missing")
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def send_message(conn: Connection, data: bytes) -> None:
    """Send one message in the framing of ``xlreg peer send`` (4-byte
    big-endian length, the bytes) and wait for the receiver's ``K``."""
    if len(data) > MAX_MESSAGE:
        raise UsageError(f"the message is {len(data)} bytes; at most {MAX_MESSAGE}")
    conn.sendall(struct.pack(">I", len(data)) + bytes(data))
    answer = _recv_exactly(conn, 1)
    if answer != RECEIVED:
        raise ProtocolError(f"{conn!r} answered {answer!r} instead of confirming the message")


def recv_message(conn: Connection) -> bytes:
    """Receive one message in the framing of ``xlreg peer listen`` and
    confirm it with ``K``. Raises :class:`xlreg.ProtocolError` for a
    message over :data:`MAX_MESSAGE` or a peer that stops mid-message."""
    (n,) = struct.unpack(">I", _recv_exactly(conn, 4))
    if n > MAX_MESSAGE:
        raise ProtocolError(f"{conn!r} announced a message of {n} bytes; at most {MAX_MESSAGE}")
    data = _recv_exactly(conn, n)
    conn.sendall(RECEIVED)
    return data
