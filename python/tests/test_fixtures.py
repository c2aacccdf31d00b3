"""The pytest plugin's fixtures, used the way a user testing their own
distributed service would (the fixtures come from the `pytest11` entry
point of the installed package, not from conftest.py)."""

from __future__ import annotations

import socket
import threading
from typing import Callable, List

import xlreg
from xlreg.testing import LocalCluster, LocalRegistry


def serve_name(listener: socket.socket, name: str, connections: int) -> threading.Thread:
    """A toy service: answer each connection with the member's name."""

    def run() -> None:
        with listener:
            listener.settimeout(30)
            for _ in range(connections):
                conn, _ = listener.accept()
                with conn:
                    conn.sendall(name.encode())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def ask(endpoint: str) -> str:
    host, port = endpoint.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        chunks = []
        while True:
            b = s.recv(1024)
            if not b:
                return b"".join(chunks).decode()
            chunks.append(b)


def test_a_service_on_a_three_member_cluster_reaches_every_peer(
    xlreg_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = xlreg_cluster(3)
    assert len(cluster) == 3
    threads: List[threading.Thread] = []
    for m in cluster.members:
        listeners = m.take_listeners()
        assert [f"127.0.0.1:{s.getsockname()[1]}" for s in listeners] == m.endpoints
        for extra in listeners[1:]:
            extra.close()
        threads.append(serve_name(listeners[0], m.node.name, connections=2))
    assert cluster.members[0].take_listeners() == []  # handed over once
    for m in cluster.members:
        view = m.view
        assert view.is_complete
        got = {p.name: ask(p.endpoints[0]) for p in view.peers}
        assert got == {p.name: p.name for p in view.peers}
    for t in threads:
        t.join(10)
        assert not t.is_alive()


def test_my_own_members_boot_on_the_registry_fixture(xlreg_registry: LocalRegistry) -> None:
    rc = xlreg.RegCred.load(xlreg_registry.regcred_path)
    assert rc == xlreg_registry.regcred and xlreg_registry.running
    xlreg.create_cluster(rc, "mine", 2)
    a = xlreg.Node.generate(name="a", endpoints=["127.0.0.1:7201"], key_bits=1024)
    b = xlreg.Node.generate(name="b", endpoints=["127.0.0.1:7202"], key_bits=1024)
    t = threading.Thread(target=lambda: xlreg.boot(rc, b, cluster="mine"))
    t.start()
    view = xlreg.boot(rc, a, cluster="mine")
    t.join()
    assert [m.name for m in xlreg.read_members(rc, "mine").members] == [m.name for m in view.members]
    assert {m.name for m in view.members} == {"a", "b"}


def test_the_cluster_factory_uses_an_existing_registry_and_the_key_pool(
    xlreg_registry: LocalRegistry, xlreg_cluster: Callable[..., LocalCluster]
) -> None:
    c1 = xlreg_cluster(2, regcred=xlreg_registry.regcred, name="on-fixture")
    assert c1.regcred_path is None  # no registry of its own
    assert c1.address == xlreg_registry.address
    listed = xlreg.read_members(xlreg_registry.regcred, "on-fixture")
    assert [m.id for m in listed.members] == [m.id for m in c1.members[0].view.members]
    # Once the first is shut down, a second cluster of the same size
    # reuses the pool's keys (while both live, they get different keys).
    c1.shutdown()
    c2 = xlreg_cluster(2, regcred=xlreg_registry.regcred)
    assert c2.keys_reused == 4 and c2.keys_generated == 0
    assert c2.cluster_id != c1.cluster_id
