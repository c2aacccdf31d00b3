"""A ring of Python members: each sends the next one a secret.

Run it as a cluster of 3 (or any size)::

    xlreg up --size 3 -- python examples/python/ring.py

Each copy boots from the ``XLREG_*`` environment that ``xlreg up`` gives it,
listens on its first endpoint, encrypts a message to the next member (by
cluster index, wrapping around) with that member's comms key (RSA-OAEP,
SHA-256, via ``cryptography``), sends it, and decrypts the message it
receives from the previous member with its own private key. It exits 0 only
if the message it received is exactly the one the previous member meant
for it; ``xlreg up`` exits 0 only if every copy did.
"""

from __future__ import annotations

import socket
import sys
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import (
    load_pem_private_key,
    load_pem_public_key,
)

import xlreg

TIMEOUT = 30.0
OAEP = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA256()),
    algorithm=hashes.SHA256(),
    label=None,
)


def host_port(endpoint: str) -> tuple[str, int]:
    host, port = endpoint.rsplit(":", 1)
    return host, int(port)


def message(sender: str, receiver: str) -> bytes:
    return f"ring message from {sender} to {receiver}".encode()


def send(endpoint: str, data: bytes) -> None:
    """Connect (retrying until TIMEOUT: the peer may still be starting) and send."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            with socket.create_connection(host_port(endpoint), timeout=TIMEOUT) as s:
                s.sendall(data)
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def receive(server: socket.socket) -> bytes:
    conn, _ = server.accept()
    with conn:
        conn.settimeout(TIMEOUT)
        chunks: list[bytes] = []
        while True:
            b = conn.recv(65536)
            if not b:
                return b"".join(chunks)
            chunks.append(b)


def main() -> int:
    env = xlreg.UpEnv.from_env()
    node = env.node()
    # Listen before booting: once a peer sees us in the view, we accept.
    server = socket.create_server(host_port(node.endpoints[0]))
    server.settimeout(TIMEOUT)
    view = env.boot(wait=TIMEOUT)
    size = len(view.members)
    me = view.me
    nxt = view.member((view.self_index + 1) % size)
    prev = view.member((view.self_index - 1) % size)
    assert me is not None and nxt is not None and prev is not None

    peer_key = load_pem_public_key(nxt.comms_key_pem.encode())
    assert isinstance(peer_key, rsa.RSAPublicKey)
    send(nxt.endpoints[0], peer_key.encrypt(message(me.name, nxt.name), OAEP))

    data = receive(server)
    key = load_pem_private_key(node.comms_private_key_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    got = key.decrypt(data, OAEP)
    want = message(prev.name, me.name)
    if got != want:
        print(f"{me.name}: got {got!r}, expected {want!r}", file=sys.stderr)
        return 1
    print(f"{me.name} (index {view.self_index}): received {got.decode()!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
