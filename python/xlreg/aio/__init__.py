"""The one-call flows for asyncio.

The Rust futures run on xlreg's background runtime; awaiting them never
blocks the event loop, so many members can boot concurrently from one
loop::

    views = await asyncio.gather(*(xlreg.aio.boot(rc, n, cluster="c")
                                   for n in nodes))

Cancelling the awaiting task cancels the Rust future. Arguments and results
are those of the blocking functions in :mod:`xlreg`. :mod:`xlreg.aio.peer`
is the members' encrypted channel as asyncio streams.
"""

from __future__ import annotations

import os
from typing import Optional, Union

from .. import _xlreg
from .._xlreg import ClusterInfo, ClusterView, MemberList, Node, RegCred, UpEnv

from . import peer
from .session import Session

__all__ = [
    "Session", "boot", "boot_env", "create_cluster", "peer", "read_members", "register",
]

RegCredLike = Union[RegCred, str, "os.PathLike[str]"]


async def create_cluster(
    regcred: RegCredLike,
    name: str,
    size: int,
    endpoints: int = 1,
    *,
    admin: Optional[Node] = None,
    exist_ok: bool = False,
    timeout: Optional[float] = None,
) -> ClusterInfo:
    """Create cluster ``name`` for ``size`` members (see :func:`xlreg.create_cluster`)."""
    return await _xlreg.create_cluster_async(
        regcred, name, size, endpoints, admin=admin, exist_ok=exist_ok, timeout=timeout
    )


async def register(regcred: RegCredLike, node: Node, *, timeout: Optional[float] = None) -> str:
    """Register ``node`` without joining; returns its node ID (see :func:`xlreg.register`)."""
    return await _xlreg.register_async(regcred, node, timeout=timeout)


async def boot(
    regcred: RegCredLike,
    node: Node,
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    wait: Optional[float] = 30.0,
    attrs: int = 0,
    timeout: Optional[float] = None,
) -> ClusterView:
    """Register, join and wait for every member (see :func:`xlreg.boot`)."""
    return await _xlreg.boot_async(
        regcred,
        node,
        cluster,
        cluster_id=cluster_id,
        wait=wait,
        attrs=attrs,
        timeout=timeout,
    )


async def read_members(
    regcred: RegCredLike,
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    reader: Optional[Node] = None,
    timeout: Optional[float] = None,
) -> MemberList:
    """Read a cluster's members without joining it (see :func:`xlreg.read_members`)."""
    return await _xlreg.read_members_async(
        regcred, cluster, cluster_id=cluster_id, reader=reader, timeout=timeout
    )


async def boot_env(
    env: UpEnv, wait: Optional[float] = 30.0, *, timeout: Optional[float] = None
) -> ClusterView:
    """Boot as the member ``xlreg up`` describes in ``env``
    (:meth:`xlreg.UpEnv.boot` for asyncio)."""
    return await env.boot_async(wait, timeout=timeout)


# Clusters that change (issue 23).
from typing import AsyncIterator  # noqa: E402

__all__ += ["evict", "leave", "resize", "watch"]


async def resize(
    regcred: RegCredLike,
    size: int,
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    admin: Optional[Node] = None,
    timeout: Optional[float] = None,
) -> int:
    """Resize the cluster as its creator; returns its new version (see :func:`xlreg.resize`)."""
    return await _xlreg.resize_async(
        regcred, size, cluster, cluster_id=cluster_id, admin=admin, timeout=timeout
    )


async def evict(
    regcred: RegCredLike,
    member: Union[int, str],
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    admin: Optional[Node] = None,
    timeout: Optional[float] = None,
) -> int:
    """Evict a member (slot or name) as the creator; returns the new version (see :func:`xlreg.evict`)."""
    return await _xlreg.evict_async(
        regcred, member, cluster, cluster_id=cluster_id, admin=admin, timeout=timeout
    )


async def leave(
    regcred: RegCredLike,
    node: Node,
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    timeout: Optional[float] = None,
) -> int:
    """``node`` leaves the cluster; returns the new version (see :func:`xlreg.leave`)."""
    return await _xlreg.leave_async(regcred, node, cluster, cluster_id=cluster_id, timeout=timeout)


async def watch(
    regcred: RegCredLike,
    cluster: Optional[str] = None,
    *,
    cluster_id: Optional[str] = None,
    node: Optional[Node] = None,
    since: int = 0,
    timeout: Optional[float] = None,
) -> AsyncIterator[ClusterView]:
    """Each new version of the cluster, in order, until it is deleted::

        async for view in xlreg.aio.watch(rc, "demo"):
            print(view.version, len(view.members))

    (see :func:`xlreg.watch`; cancelling the loop's task cancels the held
    request)."""
    w = _xlreg.watch(
        regcred, cluster, cluster_id=cluster_id, node=node, since=since, timeout=timeout
    )
    try:
        while True:
            view = await w.next_async()
            if view is None:
                return
            yield view
    finally:
        w.close()
