"""``Node.generate(..., key_pool=P)`` (issue 18 §4): nodes a test makes
itself take their keys from the fixtures' key pool (reused across runs,
no key generation), and keys are never given to two live holders in one
process: two live pooled nodes differ, and neither shares a key with a
cluster launched on the same pool."""

from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path

import pytest

import xlreg
from xlreg.testing import ClusterFactory, LocalRegistry


def _keys(n: xlreg.Node) -> set:
    return {n.comms_key_pem, n.sig_key_pem}


def test_live_pooled_nodes_never_share_keys_and_a_freed_slot_is_reused(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    a = xlreg.Node.generate(name="a", key_bits=1024, key_pool=pool)
    b = xlreg.Node.generate(name="b", key_bits=1024, key_pool=pool)
    assert a.comms_key_pem != a.sig_key_pem
    assert not _keys(a) & _keys(b)
    assert a.key_bits == 1024 and a.created and a.name == "a"
    # The keys are files of the pool (reused by the next run).
    assert len(list((pool / "nodes" / "rsa1024").glob("key-*.pem"))) == 2
    a_keys = _keys(a)
    del a
    gc.collect()
    c = xlreg.Node.generate(name="c", key_bits=1024, key_pool=pool)
    assert _keys(c) == a_keys  # a's slot was free again
    assert not _keys(c) & _keys(b)
    assert c.id != b.id


def test_a_saved_copy_keeps_the_keys_from_being_handed_out_again(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    a = xlreg.Node.generate(key_bits=1024, key_pool=pool)
    saved = a.save(tmp_path / "a")
    del a
    gc.collect()
    b = xlreg.Node.generate(key_bits=1024, key_pool=pool)
    assert not _keys(saved) & _keys(b)


def test_a_pooled_node_shares_no_key_with_a_live_cluster_of_the_same_pool(
    xlreg_cluster: ClusterFactory, xlreg_key_pool: Path
) -> None:
    cluster = xlreg_cluster(2)
    node = xlreg.Node.generate(key_bits=1024, key_pool=xlreg_key_pool)
    cluster_keys = set().union(*(_keys(m.node) for m in cluster.members))
    assert len(cluster_keys) == 4
    assert not _keys(node) & cluster_keys


def test_pooled_nodes_boot_a_cluster(xlreg_registry: LocalRegistry, xlreg_key_pool: Path) -> None:
    xlreg.create_cluster(xlreg_registry.regcred, "pooled", 2)
    nodes = [
        xlreg.Node.generate(name=f"p{i}", endpoints=[f"127.0.0.1:{7300 + i}"],
                            key_bits=1024, key_pool=xlreg_key_pool)
        for i in range(2)
    ]

    async def main() -> list:
        return list(await asyncio.gather(
            *(xlreg.aio.boot(xlreg_registry.regcred, n, cluster="pooled") for n in nodes)))

    views = asyncio.run(main())
    assert sorted(v.me.name for v in views) == ["p0", "p1"]
    assert {m.comms_key_pem for m in views[0].members} == {n.comms_key_pem for n in nodes}


def test_a_pool_others_can_write_to_is_refused(tmp_path: Path) -> None:
    pool = tmp_path / "open"
    (pool / "nodes").mkdir(parents=True)
    os.chmod(pool / "nodes", 0o777)
    with pytest.raises(xlreg.XlRegError, match="chmod 700"):
        xlreg.Node.generate(key_bits=1024, key_pool=pool)
