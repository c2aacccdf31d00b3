"""Changing a harness cluster from Python (issue 23): ``LocalCluster.replace``,
``.resize``, ``.evict`` and ``.member_in``, which call the Rust harness
(``xlreg::testing::LocalCluster``, tested in crates/xlreg/tests/change_client.rs)
and return once every member's watch saw the change."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

import xlreg
from xlreg.testing import LocalCluster


def ids_by_slot(view: xlreg.ClusterView) -> Dict[int, str]:
    return {m.index: m.id for m in view.members}


def test_replace_gives_the_slot_a_new_node_and_every_member_sees_it(xlreg_key_pool: Path) -> None:
    with LocalCluster(3, key_pool=xlreg_key_pool) as c:
        before: List[Tuple[int, str]] = [(m.index, m.node.id) for m in c.members]
        assert [i for i, _ in before] == [0, 1, 2]
        old_version = c.members[0].view.version
        new = c.replace(1)
        assert new.index == 1
        assert new.node.id != before[1][1]
        assert new.node.name.startswith("m01r")
        # The others kept their IDs and slots; the list is in slot order.
        after = [(m.index, m.node.id) for m in c.members]
        assert after == [before[0], (1, new.node.id), before[2]]
        assert c.member_in(1) is not None and c.member_in(1).node.id == new.node.id  # type: ignore[union-attr]
        # Every member's own view shows the newcomer in slot 1.
        for m in c.members:
            v = m.view
            assert v.self_index == m.index
            assert v.version > old_version
            assert ids_by_slot(v) == {0: before[0][1], 1: new.node.id, 2: before[2][1]}
            assert v.is_complete
        # The newcomer's endpoints are listening sockets handed over once.
        ls = new.take_listeners()
        assert len(ls) == 2 and new.take_listeners() == []
        for s in ls:
            host, port = s.getsockname()[:2]
            assert f"{host}:{port}" in new.endpoints
            s.close()
        # The registry agrees.
        now = next(xlreg.watch(c.regcred, c.cluster_name or ""))
        assert ids_by_slot(now) == ids_by_slot(c.members[0].view)


def test_resize_to_five_adds_two_members_in_slots_3_and_4(xlreg_key_pool: Path) -> None:
    with LocalCluster(3, key_pool=xlreg_key_pool) as c:
        old = {m.index: m.node.id for m in c.members}
        version = c.resize(5)
        assert [m.index for m in c.members] == [0, 1, 2, 3, 4]
        assert len(c) == 5 and c.info.max_size == 5
        assert {m.index: m.node.id for m in c.members[:3]} == old
        assert [m.node.name for m in c.members[3:]] == ["m03", "m04"]
        for m in c.members:
            assert m.view.version == version
            assert m.view.max_size == 5 and len(m.view) == 5 and m.view.is_complete
        # A new member's endpoint accepts connections on its socket.
        (s, *_) = c.members[4].take_listeners()
        with s, socket.create_connection(s.getsockname()[:2], timeout=5):
            pass


def test_shrinking_over_an_occupied_slot_names_the_member_and_evict_frees_it(xlreg_key_pool: Path) -> None:
    with LocalCluster(3, key_pool=xlreg_key_pool) as c:
        with pytest.raises(xlreg.RegistryError) as e:
            c.resize(2)
        assert "cannot shrink cluster to 2: slot 2 is held by member m02" in str(e.value)
        assert e.value.server_text is not None and "m02" in e.value.server_text
        assert len(c) == 3 and c.info.max_size == 3
        # Evict slot 2 (its listeners close), then the shrink works.
        (port, *_) = [int(ep.rsplit(":", 1)[1]) for ep in c.members[2].endpoints]
        v = c.evict(2)
        assert c.member_in(2) is None and [m.index for m in c.members] == [0, 1]
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert all(m.view.version == v and len(m.view) == 2 for m in c.members)
        assert c.resize(2) > v
        assert c.info.max_size == 2 and all(m.view.max_size == 2 for m in c.members)
        with pytest.raises(xlreg.UsageError, match="no member in slot 2"):
            c.evict(2)


def test_a_cluster_with_faults_refuses_changes_clearly(xlreg_key_pool: Path) -> None:
    with LocalCluster(3, key_pool=xlreg_key_pool, faults=True) as c:
        for call in (lambda: c.resize(4), lambda: c.evict(1), lambda: c.replace(1)):
            with pytest.raises(xlreg.UsageError, match="launched with faults"):
                call()
        assert [m.index for m in c.members] == [0, 1, 2]


def test_a_change_releases_the_gil_and_a_shut_down_cluster_refuses() -> None:
    c = LocalCluster(2)
    ticks = 0
    stop = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            stop.wait(0.001)

    t = threading.Thread(target=tick)
    t.start()
    try:
        c.resize(3)  # boots a member with fresh keys: takes a while
    finally:
        stop.set()
        t.join()
    assert ticks > 5, ticks
    c.shutdown()
    with pytest.raises(xlreg.UsageError, match="shut down"):
        c.resize(4)
