"""xlreg: Python members for the xlReg cluster registry.

A member proves itself to the registry with an RSA-signed token, gets a node
ID, joins a named cluster and learns every peer's ID, endpoints and public
keys. This package is the Rust implementation (wire-compatible with the Go
registry and clients) under a Python API::

    import xlreg

    rc = xlreg.RegCred.load("regCred.dat")
    node = xlreg.Node.load_or_create("node", name="worker-1",
                                     endpoints=["127.0.0.1:7001"])
    view = xlreg.boot(rc, node, cluster="demo", wait=30.0)
    for peer in view.peers:
        print(peer.index, peer.name, peer.endpoints)

Blocking calls release the GIL while they wait; :mod:`xlreg.aio` has the
same flows for asyncio; :mod:`xlreg.testing` runs registries and whole
clusters in-process, and the pytest plugin offers them as fixtures.
"""

from __future__ import annotations

from ._errors import (
    ConnectionClosedError,
    IncompleteClusterError,
    InternalError,
    NetworkError,
    NodeError,
    ProtocolError,
    RegCredError,
    RegistryError,
    RegistryTimeoutError,
    RegistryUnreachableError,
    UsageError,
    XlRegError,
)
from ._xlreg import (
    ClusterInfo,
    ClusterView,
    Member,
    MemberList,
    Node,
    RegCred,
    Session,
    UpEnv,
    __version__,
    boot,
    create_cluster,
    read_members,
    register,
)

__all__ = [
    "ClusterInfo",
    "ClusterView",
    "ConnectionClosedError",
    "IncompleteClusterError",
    "InternalError",
    "Member",
    "MemberList",
    "NetworkError",
    "Node",
    "NodeError",
    "ProtocolError",
    "RegCred",
    "RegCredError",
    "RegistryError",
    "RegistryTimeoutError",
    "RegistryUnreachableError",
    "Session",
    "UpEnv",
    "UsageError",
    "XlRegError",
    "__version__",
    "boot",
    "create_cluster",
    "read_members",
    "register",
]
