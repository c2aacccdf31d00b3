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
most of its time making keys).
"""

from __future__ import annotations

from ._xlreg import LocalCluster, LocalMember, LocalRegistry, UpEnv

__all__ = ["LocalCluster", "LocalMember", "LocalRegistry", "UpEnv"]
