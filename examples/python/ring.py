"""A ring of Python members: each sends the next one a message over the
members' encrypted channel (:mod:`xlreg.peer`).

Run it as a cluster of 3 (or any size)::

    xlreg up --size 3 -- python examples/python/ring.py

Each copy boots from the ``XLREG_*`` environment that ``xlreg up`` gives it,
listens on its first endpoint, dials the next member (by cluster index,
wrapping around) and sends it a message, and receives the message of the
previous member. The channel is mutually authenticated TLS 1.3 with the
keys the registry lists: the listener learns which member dialed it (by its
registered sig key), the dialer that it reached the member it meant. The
framing is ``xlreg peer ring``'s, so Rust and Python members can share a
ring. It exits 0 only if the message it received came from the previous
member and is the one meant for it; ``xlreg up`` exits 0 only if every copy
did.
"""

from __future__ import annotations

import socket
import sys
import threading
from typing import List, Optional, Tuple

import xlreg
import xlreg.peer

TIMEOUT = 30.0


def host_port(endpoint: str) -> Tuple[str, int]:
    host, port = endpoint.rsplit(":", 1)
    return host, int(port)


def message(sender: str, receiver: str) -> bytes:
    return f"ring message from {sender} to {receiver}".encode()


def main() -> int:
    env = xlreg.UpEnv.from_env()
    node = env.node()
    # Listen before booting: once a peer sees us in the view, it may dial.
    sock = socket.create_server(host_port(node.endpoints[0]))
    view = env.boot(wait=TIMEOUT)
    size = len(view.members)
    me = view.me
    nxt = view.members[(view.self_index + 1) % size]
    prev = view.members[(view.self_index - 1) % size]

    received: List[Tuple[Optional[xlreg.Member], bytes]] = []
    with xlreg.peer.listen(view, node, sock) as listener:

        def receive() -> None:
            with listener.accept(timeout=TIMEOUT) as conn:
                received.append((conn.peer, xlreg.peer.recv_message(conn)))

        receiver = threading.Thread(target=receive)
        receiver.start()
        with xlreg.peer.connect(view, node, nxt.index, timeout=TIMEOUT) as conn:
            xlreg.peer.send_message(conn, message(me.name, nxt.name))
        receiver.join(TIMEOUT)

    if not received:
        print(f"{me.name}: nothing arrived from {prev.name}", file=sys.stderr)
        return 1
    sender, got = received[0]
    want = message(prev.name, me.name)
    if sender != prev:
        print(f"{me.name}: the message came from {sender}, not {prev.name}", file=sys.stderr)
        return 1
    if got != want:
        print(f"{me.name}: got {got!r}, expected {want!r}", file=sys.stderr)
        return 1
    print(f"{me.name} (index {view.self_index}): received {got.decode()!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
