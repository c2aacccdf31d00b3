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
same flows for asyncio; :mod:`xlreg.peer` is the members' encrypted channel
(mutually authenticated TLS with the registered keys; asyncio streams in
:mod:`xlreg.aio.peer`); :mod:`xlreg.testing` runs registries and whole
clusters in-process, and the pytest plugin offers them as fixtures. The
submodules load on first use (``import xlreg`` then ``xlreg.aio.boot``
works).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    ClusterExistsError,
    ConnectionClosedError,
    IncompleteClusterError,
    InternalError,
    NetworkError,
    NodeError,
    PeerRefusedError,
    PeerTimeoutError,
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

if TYPE_CHECKING:
    from . import aio, peer, testing

_SUBMODULES = ("aio", "peer", "testing")


def __getattr__(name: str) -> Any:
    """Load :mod:`xlreg.aio`, :mod:`xlreg.peer` and :mod:`xlreg.testing` on
    first use, so ``import xlreg`` stays fast."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> "list[str]":
    return sorted(list(globals()) + list(_SUBMODULES))

__all__ = [
    "ClusterExistsError",
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
    "PeerRefusedError",
    "PeerTimeoutError",
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
    "aio",
    "boot",
    "create_cluster",
    "peer",
    "read_members",
    "register",
    "testing",
]

# Clusters that change (issue 23): resize, evict, leave, watch.
from ._xlreg import Watch, evict, leave, resize, watch  # noqa: E402

__all__ += ["Watch", "evict", "leave", "resize", "watch"]
