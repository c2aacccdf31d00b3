"""``xlreg.aio.Session``: one registry session for asyncio, one protocol
step per coroutine — the blocking :class:`xlreg.Session` step for step::

    async with xlreg.aio.Session(regcred) as s:      # connects (Hello)
        info = await s.create("demo", 3)
        node_id = await s.register(node)
        await s.join("demo")
        members = await s.get_members(info.id)
    # leaving the block says Bye (or only closes after a failure)

The steps run on xlreg's background runtime and never block the event
loop. A step runs at a time (a second one meanwhile raises
:class:`xlreg.UsageError`); cancelling a step closes the session, as
Ctrl-C does in the blocking one.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import List, Optional, Type, Union

from .. import _xlreg
from .._xlreg import ClusterInfo, Member, Node, RegCred

__all__ = ["Session"]

RegCredLike = Union[RegCred, str, "os.PathLike[str]"]


class Session:
    """A registry session for asyncio (see the module docs)."""

    def __init__(self, regcred: RegCredLike, *, timeout: Optional[float] = None) -> None:
        """Remember where to connect: ``regcred`` (an :class:`xlreg.RegCred`
        or a path) and the per-step ``timeout`` in seconds (default 15).
        Nothing happens until :meth:`connect` or ``async with``."""
        self._regcred = regcred
        self._timeout = timeout
        self._core = _xlreg._AsyncSession()

    async def connect(self) -> "Session":
        """Connect and complete the Hello handshake; returns the session."""
        await self._core.connect(self._regcred, self._timeout)
        return self

    @property
    def address(self) -> Optional[str]:
        """The registry address once connected (None before, and after Bye)."""
        return self._core.address

    @property
    def is_open(self) -> bool:
        """True from :meth:`connect` until :meth:`bye` (or a step that did not finish)."""
        return self._core.is_open

    async def register(self, node: Node, attrs: int = 0) -> str:
        """Register ``node`` (Member → MemberOK) with attribute bits
        ``attrs``; returns the node ID (hex) the registry confirmed."""
        return await self._core.register(node, attrs)

    async def create(self, name: str, size: int, endpoints: int = 1) -> ClusterInfo:
        """Create cluster ``name`` (Create → CreateReply); the registry
        returns the existing cluster if the name is taken."""
        return await self._core.create(name, size, endpoints)

    async def join(
        self, cluster: Optional[str] = None, *, cluster_id: Optional[str] = None
    ) -> ClusterInfo:
        """Join a cluster by ``cluster`` name or ``cluster_id`` (Join → JoinReply)."""
        return await self._core.join(cluster, cluster_id)

    async def get_members(
        self, cluster_id: str, indexes: Optional[List[int]] = None
    ) -> List[Member]:
        """The members of cluster ``cluster_id`` at ``indexes`` (default:
        all) that are present (GetCluster → ClusterMembers)."""
        return await self._core.get_members(cluster_id, indexes)

    async def delete_cluster(
        self, cluster: Optional[str] = None, *, cluster_id: Optional[str] = None
    ) -> None:
        """Delete cluster ``cluster`` (by name) or ``cluster_id`` (an xlreg
        extension: a Go registry cannot). Allowed to a member of the
        cluster: register as one first (or right after :meth:`create`)."""
        await self._core.delete_cluster(cluster, cluster_id)

    async def bye(self) -> None:
        """Say Bye and close. Calling it again does nothing."""
        await self._core.bye()

    async def __aenter__(self) -> "Session":
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        try:
            await self.bye()
        except Exception:
            # Do not hide the exception that ended the block behind a failed Bye.
            if exc_type is None:
                raise

    def __repr__(self) -> str:
        return f"xlreg.aio.Session(address={self.address!r}, open={self.is_open})"
