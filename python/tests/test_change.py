"""Clusters that change (issue 23) from Python: resize, evict, leave, and
watching versions blocking and under asyncio. The same behaviour is tested
from Rust in crates/xlreg/tests/change.rs."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import List

import pytest

import xlreg
import xlreg.aio
from xlreg.testing import LocalRegistry


def nodes(n: int, prefix: str) -> List[xlreg.Node]:
    return [
        xlreg.Node.generate(name=f"{prefix}{i}", endpoints=[f"127.0.0.1:{22000 + i}"], key_bits=1024)
        for i in range(n)
    ]


def boot_all(rc: xlreg.RegCred, cluster: str, ns: List[xlreg.Node]) -> List[xlreg.ClusterView]:
    with ThreadPoolExecutor(len(ns)) as ex:
        return list(ex.map(lambda n: xlreg.boot(rc, n, cluster=cluster, wait=30), ns))


def test_grow_while_a_watcher_waits_then_evict_and_leave_free_slots() -> None:
    with LocalRegistry() as r:
        rc = r.regcred
        xlreg.create_cluster(rc, "grow", 3)  # this process's admin is the owner
        ns = nodes(3, "g")
        first_views = boot_all(rc, "grow", ns)
        in_slot_0 = next(n for n, v in zip(ns, first_views) if v.self_index == 0)
        seen: List[xlreg.ClusterView] = []
        with xlreg.watch(rc, "grow") as w:
            first = next(w)
            assert (first.version, len(first), first.max_size) == (4, 3, 3)
            assert w.version == 4

            def follow() -> None:
                for view in w:
                    seen.append(view)
                    if len(view) == 5:
                        return

            t = threading.Thread(target=follow)
            t.start()
            assert xlreg.resize(rc, 5, "grow") == 5
            late = nodes(2, "late")
            views = boot_all(rc, "grow", late)
            assert sorted(v.self_index for v in views) == [3, 4]
            t.join(30)
            assert not t.is_alive()
        versions = [v.version for v in seen]
        assert versions == sorted(set(versions)) and versions[-1] == 7, versions
        assert all(v.max_size == 5 for v in seen)
        # Evict slot 1 (by index) and a member by name; a member leaves.
        assert xlreg.evict(rc, 1, "grow") == 8
        in_slot_3 = next(v.me.name for v in views if v.self_index == 3)
        assert xlreg.evict(rc, in_slot_3, "grow") == 9
        assert xlreg.leave(rc, in_slot_0, "grow") == 10
        now = next(xlreg.watch(rc, "grow"))
        assert [m.index for m in now.members] == [2, 4]
        assert now.version == 10 and not now.is_complete
        # The next member takes the lowest free slot.
        v = xlreg.boot(rc, nodes(1, "new")[0], cluster="grow", wait=None)
        assert v.self_index == 0


def test_refusals_are_registry_errors_with_the_rules_text() -> None:
    with LocalRegistry() as r:
        rc = r.regcred
        xlreg.create_cluster(rc, "ref", 2)
        ns = nodes(2, "r")
        boot_all(rc, "ref", ns)
        with pytest.raises(xlreg.RegistryError) as e:
            xlreg.resize(rc, 3, "ref", admin=ns[0])
        assert e.value.server_text == "only the cluster's creator may resize or evict"
        with pytest.raises(xlreg.RegistryError) as e:
            xlreg.evict(rc, "nobody", "ref")
        assert e.value.server_text == "no member named nobody in this cluster"
        assert xlreg.resize(rc, 2, "ref") == 3  # the same size: no new version
        with pytest.raises(xlreg.RegistryError) as e:
            xlreg.evict(rc, 5, "ref")
        assert e.value.server_text == "no member in slot 5 of this cluster"
        with pytest.raises(xlreg.UsageError):
            xlreg.resize(rc, 65, "ref")
        with pytest.raises(xlreg.UsageError):
            xlreg.evict(rc, -1, "ref")
        with pytest.raises(xlreg.RegistryError) as e:
            next(xlreg.watch(rc, "no-such-cluster"))
        assert e.value.server_text is not None
        assert e.value.server_text.startswith("cannot find cluster")


def test_aio_watch_yields_each_version_in_order_as_the_cluster_changes() -> None:
    async def main() -> List[int]:
        with LocalRegistry() as r:
            rc = r.regcred
            await xlreg.aio.create_cluster(rc, "aio", 2)
            ns = nodes(2, "a")
            booted = await asyncio.gather(*(xlreg.aio.boot(rc, n, cluster="aio") for n in ns))
            in_slot_1 = next(n for n, v in zip(ns, booted) if v.self_index == 1)
            versions: List[int] = []

            async def follow() -> None:
                async for view in xlreg.aio.watch(rc, "aio"):
                    versions.append(view.version)
                    if view.version == 3:
                        # Seen as booted: now change it, then delete it.
                        assert await xlreg.aio.resize(rc, 4, "aio") == 4
                    elif view.version == 4:
                        assert await xlreg.aio.leave(rc, in_slot_1, "aio") == 5
                    elif view.version == 5:
                        assert [m.index for m in view.members] == [0]
                        assert view.max_size == 4
                        return

            await asyncio.wait_for(follow(), 30)
            return versions

    assert asyncio.run(main()) == [3, 4, 5]
