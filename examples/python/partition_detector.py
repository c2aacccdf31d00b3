"""Members that notice a partition: each heartbeats every peer and reports
when one stops answering and when it is back.

Run it as a cluster of 3 with fault proxies between the members, and break
the cluster from another terminal::

    xlreg up --size 3 --faults --name demo -- python examples/python/partition_detector.py
    xlreg fault --cluster demo partition 0,1 2     # m02 is cut off
    xlreg fault --cluster demo heal

Each copy boots from the ``XLREG_*`` environment of ``xlreg up`` (under
``--faults`` the view it gets names its own proxy for every peer), answers
``ping`` lines on its first endpoint with ``pong NAME``, and keeps one
connection to every peer, sending a ping every 0.2 s. A peer that leaves a
ping unanswered for 1 s is reported ``PEER down``, and reported ``PEER
back`` at its next answer (the connection is dropped and dialed again
while the peer is silent, as a real failure detector would). It runs
until SIGTERM/SIGINT (``xlreg up`` sends it on Ctrl-C) or, with
``--seconds S``, for S seconds.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from typing import Optional, Tuple

import xlreg

PERIOD = 0.2
TIMEOUT = 1.0


def host_port(endpoint: str) -> Tuple[str, int]:
    host, port = endpoint.rsplit(":", 1)
    return host, int(port)


_out = threading.Lock()


def say(text: str) -> None:
    """One whole line at a time (the watchers are threads)."""
    with _out:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def answer(sock: socket.socket, name: str) -> None:
    """Answer every ``ping`` line on every connection with ``pong NAME``."""

    def one(conn: socket.socket) -> None:
        with conn:
            for line in conn.makefile("rb"):
                if line.strip() == b"ping":
                    conn.sendall(f"pong {name}\n".encode())

    while True:
        conn, _ = sock.accept()
        threading.Thread(target=one, args=(conn,), daemon=True).start()


def watch(me: str, peer: str, endpoint: str, stop: threading.Event) -> None:
    """Heartbeat ``peer`` until ``stop``; report when it goes and comes back."""
    up: Optional[bool] = None
    conn: Optional[socket.socket] = None
    reader = None
    while not stop.is_set():
        ok = False
        try:
            if conn is None:
                conn = socket.create_connection(host_port(endpoint), timeout=TIMEOUT)
                reader = conn.makefile("rb")
            conn.settimeout(TIMEOUT)
            conn.sendall(b"ping\n")
            assert reader is not None
            ok = reader.readline().strip() == f"pong {peer}".encode()
        except OSError:
            ok = False
        if not ok and conn is not None:
            conn.close()
            conn, reader = None, None
        if ok != up:
            if up is None and ok:
                say(f"{me}: {peer} answers")
            else:
                say(f"{me}: {peer} {'back' if ok else 'down'}")
            up = ok
        stop.wait(PERIOD)


def main() -> int:
    seconds = float(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else None
    env = xlreg.UpEnv.from_env()
    passed = xlreg.UpEnv.take_listeners()
    # Listen before booting: once a peer sees us in the view, it may dial.
    sock = passed[0] if passed else socket.create_server(host_port(env.endpoints[0]))
    view = env.boot(wait=30)
    me = view.me.name
    threading.Thread(target=answer, args=(sock, me), daemon=True).start()
    stop = threading.Event()
    for m in view.members:
        if m.index != view.self_index:
            threading.Thread(
                target=watch, args=(me, m.name, m.endpoints[0], stop), daemon=True
            ).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait(seconds)
    stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
