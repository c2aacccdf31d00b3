"""The asyncio forms of the pytest plugin's fixtures, for pytest-asyncio
(>= 0.24; without it they are not defined). Imported by
:mod:`xlreg.pytest_plugin`.

``xlreg_registry_async`` (and ``_module`` / ``_session``)
    A :class:`xlreg.testing.LocalRegistry`, started and stopped without
    blocking the event loop.
``xlreg_cluster_async`` (and ``_module`` / ``_session``)
    A factory: ``await xlreg_cluster_async(size, ...)`` (the arguments of
    ``xlreg_cluster``) boots a :class:`xlreg.testing.LocalCluster` on a
    worker thread while the loop keeps running; its type is
    :class:`xlreg.testing.AsyncClusterFactory`. Keys come from
    ``xlreg_key_pool``.

Module- and session-scoped forms run on an event loop of that scope
(``loop_scope``); the objects they give do not depend on a loop, so tests
on any loop may use them::

    @pytest.mark.asyncio
    async def test_it(xlreg_cluster_async):
        c = await xlreg_cluster_async(3)
        view = c.members[0].view
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator, List

from .testing import AsyncClusterFactory, LocalCluster, LocalRegistry

try:
    import pytest_asyncio

    _HAVE = tuple(int(x) for x in pytest_asyncio.__version__.split(".")[:2]) >= (0, 24)
except (ImportError, ValueError):  # not installed, or an odd version string
    _HAVE = False

__all__: List[str] = []


async def _registry() -> AsyncIterator[LocalRegistry]:
    r = await asyncio.to_thread(LocalRegistry)
    try:
        yield r
    finally:
        await asyncio.to_thread(r.stop)


async def _clusters(pool: Path) -> AsyncIterator[AsyncClusterFactory]:
    made: List[LocalCluster] = []

    async def make(size: int, *args: Any, **kw: Any) -> LocalCluster:
        if len(args) < 3:
            kw.setdefault("key_pool", str(pool))
        c = await asyncio.to_thread(LocalCluster, size, *args, **kw)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            await asyncio.to_thread(c.shutdown)


if _HAVE:
    __all__ = [
        "xlreg_cluster_async",
        "xlreg_cluster_async_module",
        "xlreg_cluster_async_session",
        "xlreg_registry_async",
        "xlreg_registry_async_module",
        "xlreg_registry_async_session",
    ]

    @pytest_asyncio.fixture
    async def xlreg_registry_async() -> AsyncIterator[LocalRegistry]:
        """``xlreg_registry`` for asyncio tests (started off the loop)."""
        async for r in _registry():
            yield r

    @pytest_asyncio.fixture(scope="module", loop_scope="module")
    async def xlreg_registry_async_module() -> AsyncIterator[LocalRegistry]:
        """``xlreg_registry_module`` for asyncio tests."""
        async for r in _registry():
            yield r

    @pytest_asyncio.fixture(scope="session", loop_scope="session")
    async def xlreg_registry_async_session() -> AsyncIterator[LocalRegistry]:
        """``xlreg_registry_session`` for asyncio tests."""
        async for r in _registry():
            yield r

    @pytest_asyncio.fixture
    async def xlreg_cluster_async(xlreg_key_pool: Path) -> AsyncIterator[AsyncClusterFactory]:
        """``xlreg_cluster`` for asyncio tests: ``await xlreg_cluster_async(size, ...)``."""
        async for f in _clusters(xlreg_key_pool):
            yield f

    @pytest_asyncio.fixture(scope="module", loop_scope="module")
    async def xlreg_cluster_async_module(
        xlreg_key_pool: Path,
    ) -> AsyncIterator[AsyncClusterFactory]:
        """``xlreg_cluster_async`` whose clusters live until the end of the module."""
        async for f in _clusters(xlreg_key_pool):
            yield f

    @pytest_asyncio.fixture(scope="session", loop_scope="session")
    async def xlreg_cluster_async_session(
        xlreg_key_pool: Path,
    ) -> AsyncIterator[AsyncClusterFactory]:
        """``xlreg_cluster_async`` whose clusters live until the end of the session."""
        async for f in _clusters(xlreg_key_pool):
            yield f
