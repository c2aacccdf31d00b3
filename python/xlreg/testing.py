"""In-process registries and clusters for tests.

:class:`LocalRegistry` runs the Rust registry on a background thread pool of
this process (a free 127.0.0.1 port, everything in memory, its regCred.dat
in a temporary directory); :class:`LocalCluster` adds a cluster of booted
members with listening sockets on their endpoints. Both are context
managers::

    with xlreg.testing.LocalCluster(3) as c:
        a, b, _ = c.members
        assert a.view.members == b.view.members

Keys: clusters use 1024-bit keys by default (test only). Pass ``key_pool``,
a directory, to reuse keys across runs (a cold 64-member cluster spends
most of its time making keys); clusters alive at once in one process never
share keys. ``LocalRegistry(data_dir=..., hold=..., cluster_ttl=...)``
keeps its clusters in SQLite so ``restart()`` finds them again.

Faults: ``LocalCluster(3, faults=True)`` puts a loopback proxy between
every two members (each member's view names its own proxies), and the
cluster's methods break it on purpose, without root::

    c.partition([[0], [1, 2]])   # 0 reaches no one; 1 <-> 2 still talk
    c.delay(0, 1, 0.2)           # bytes 0 -> 1 arrive 200 ms later
    c.cut(1, 2, one_way=True); c.isolate(2); c.drop(2, 0, 0.1)
    c.current()                  # ["partition 0 1,2", ...]
    c.heal()                     # everything back, open connections too
    with c.nemesis("partition-halves", every=5.0, seed=7): ...

They only change rules (nothing blocks), so they work the same from
threads and asyncio tests; over plain TCP and the ``xlreg.peer`` TLS
channel alike.

Membership changes (without ``faults``): ``c.replace(1)`` stops and evicts
member 1 and boots a new node into slot 1, ``c.resize(5)`` grows (or
shrinks over empty slots), ``c.evict(2)`` frees a slot, ``c.member_in(i)``
finds a member by slot; each returns once every member's watch saw it.
"""

from __future__ import annotations

import os
from typing import Optional, Protocol, Union

from ._xlreg import LocalCluster, LocalMember, LocalRegistry, Nemesis, RegCred, UpEnv

__all__ = [
    "AsyncClusterFactory", "ClusterFactory", "LocalCluster", "LocalMember", "LocalRegistry", "Nemesis",
    "UpEnv",
]


class ClusterFactory(Protocol):
    """The type of the ``xlreg_cluster`` fixtures (a factory of booted
    :class:`LocalCluster` objects, shut down when the fixture ends)::

        def test_it(xlreg_cluster: xlreg.testing.ClusterFactory) -> None:
            c = xlreg_cluster(3)
    """

    def __call__(
        self,
        size: int,
        endpoints: int = 2,
        key_bits: int = 1024,
        key_pool: Optional[Union[str, "os.PathLike[str]"]] = None,
        *,
        name: Optional[str] = None,
        regcred: Optional[Union[RegCred, str, "os.PathLike[str]"]] = None,
        wait: float = 30.0,
        faults: bool = False,
    ) -> LocalCluster: ...


class AsyncClusterFactory(Protocol):
    """The type of the ``xlreg_cluster_async`` fixtures (pytest-asyncio):
    ``await xlreg_cluster_async(3)`` boots a :class:`LocalCluster` without
    blocking the event loop; the arguments are :class:`ClusterFactory`'s."""

    async def __call__(
        self,
        size: int,
        endpoints: int = 2,
        key_bits: int = 1024,
        key_pool: Optional[Union[str, "os.PathLike[str]"]] = None,
        *,
        name: Optional[str] = None,
        regcred: Optional[Union[RegCred, str, "os.PathLike[str]"]] = None,
        wait: float = 30.0,
        faults: bool = False,
    ) -> LocalCluster: ...
