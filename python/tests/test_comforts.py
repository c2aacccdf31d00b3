"""Issue 18 §4, what a pytest user expects: a registry with a data
directory that survives restart(), hold/TTL options, module- and
session-scoped fixtures and the factory's type, and an asyncio boot of an
`xlreg up` member."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Dict, List

import pytest

import xlreg
from xlreg.testing import ClusterFactory, LocalCluster, LocalRegistry

SEEN: Dict[str, str] = {}


def test_a_registry_with_a_data_dir_keeps_its_clusters_across_restart(tmp_path: Path) -> None:
    with LocalRegistry(data_dir=tmp_path / "reg", hold=0.5, cluster_ttl=3600) as r:
        assert r.data_dir == tmp_path / "reg"
        rc_before = r.regcred
        with LocalCluster(2, regcred=r.regcred, name="kept") as c:
            ids = [m.id for m in c.members[0].view.members]
        r.restart()
        assert r.running
        assert r.regcred.id == rc_before.id and r.regcred.address == rc_before.address
        listed = xlreg.read_members(r.regcred, "kept")
        assert [m.id for m in listed.members] == ids
        assert r.regcred_path == tmp_path / "reg" / "regCred.dat"
    assert not r.running
    # A new registry on the same directory finds them too.
    with LocalRegistry(data_dir=tmp_path / "reg") as again:
        assert [m.id for m in xlreg.read_members(again.regcred, "kept").members] == ids


def test_restart_needs_a_data_dir_and_options_are_checked() -> None:
    with LocalRegistry() as r:
        with pytest.raises(xlreg.UsageError, match="data_dir"):
            r.restart()
    with pytest.raises(xlreg.UsageError, match="hold"):
        LocalRegistry(hold=-1)


def test_module_fixtures_are_shared_by_the_tests_of_a_module_one(
    xlreg_registry_module: LocalRegistry, xlreg_cluster_module: ClusterFactory
) -> None:
    c = xlreg_cluster_module(2, regcred=xlreg_registry_module.regcred, name="shared")
    SEEN["registry"] = xlreg_registry_module.address
    SEEN["cluster"] = c.cluster_id


def test_module_fixtures_are_shared_by_the_tests_of_a_module_two(
    xlreg_registry_module: LocalRegistry, xlreg_registry_session: LocalRegistry
) -> None:
    assert xlreg_registry_module.address == SEEN["registry"]
    # The cluster of the previous test is still alive on the shared registry.
    listed = xlreg.read_members(xlreg_registry_module.regcred, "shared")
    assert listed.cluster_id == SEEN["cluster"] and len(listed) == 2
    assert xlreg_registry_session.address != xlreg_registry_module.address


def test_up_members_boot_from_asyncio(
    xlreg_registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment `xlreg up` gives each member, for two members.
    info = xlreg.create_cluster(xlreg_registry.regcred, "env", 2)
    envs = []
    for i in range(2):
        for k, v in {
            "XLREG_REGCRED": str(xlreg_registry.regcred_path),
            "XLREG_CLUSTER_NAME": "env",
            "XLREG_CLUSTER_ID": info.id,
            "XLREG_CLUSTER_SIZE": "2",
            "XLREG_MEMBER_NAME": f"m{i:02}",
            "XLREG_MEMBER_INDEX": str(i),
            "XLREG_ENDPOINTS": f"127.0.0.1:{7200 + i}",
            "XLREG_NODE_DIR": str(tmp_path / f"m{i:02}"),
        }.items():
            monkeypatch.setenv(k, v)
        envs.append(xlreg.UpEnv.from_env())

    async def main() -> List[xlreg.ClusterView]:
        return list(await asyncio.gather(*(xlreg.aio.boot_env(e, wait=30) for e in envs)))

    views = asyncio.run(main())
    assert [v.cluster_id for v in views] == [info.id, info.id]
    assert sorted(v.me.name for v in views) == ["m00", "m01"]
    assert all(len(v.members) == 2 for v in views)
