"""pytest plugin (registered through the ``pytest11`` entry point).

Fixtures, so a test of a distributed Python service starts with a registry
and N identities in one line:

``xlreg_registry``
    A :class:`xlreg.testing.LocalRegistry`, stopped after the test.
``xlreg_cluster``
    A factory: ``xlreg_cluster(size, endpoints=2, key_bits=1024, **kw)``
    returns a booted :class:`xlreg.testing.LocalCluster`; every cluster it
    made is shut down after the test.
``xlreg_key_pool``
    A directory that keeps test keys between runs (pytest's cache, or
    ``$XLREG_KEY_POOL``); the cluster factory uses it by default.
``xlreg_registry_module``, ``xlreg_registry_session``,
``xlreg_cluster_module``, ``xlreg_cluster_session``
    The same, shared by every test of a module or of the session (made on
    first use, stopped at its end). They are plain fixtures, usable from
    asyncio tests too (the clusters run on xlreg's own background
    runtime, never on the test's event loop).

The factory's type is :class:`xlreg.testing.ClusterFactory`. With
pytest-asyncio installed, ``xlreg_registry_async`` and
``xlreg_cluster_async`` (and their ``_module`` / ``_session`` forms) are
the asyncio forms (see :mod:`xlreg._pytest_async`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from .testing import ClusterFactory, LocalCluster, LocalRegistry


@pytest.fixture(scope="session")
def xlreg_key_pool(request: pytest.FixtureRequest) -> Path:
    """Directory of reusable test keys: ``$XLREG_KEY_POOL`` or pytest's cache."""
    env = os.environ.get("XLREG_KEY_POOL")
    if env:
        p = Path(env)
        p.mkdir(parents=True, exist_ok=True)
        return p
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("xlreg-key-pool"))
    return Path(request.config.rootpath) / ".xlreg-key-pool"


def _registry() -> Iterator[LocalRegistry]:
    with LocalRegistry() as r:
        yield r


def _clusters(pool: Path) -> Iterator[ClusterFactory]:
    made: List[LocalCluster] = []

    def make(size: int, *args: Any, **kw: Any) -> LocalCluster:
        if len(args) < 3:
            kw.setdefault("key_pool", str(pool))
        c = LocalCluster(size, *args, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.shutdown()


@pytest.fixture
def xlreg_registry() -> Iterator[LocalRegistry]:
    """An in-process registry for this test (stopped afterwards)."""
    yield from _registry()


@pytest.fixture(scope="module")
def xlreg_registry_module() -> Iterator[LocalRegistry]:
    """An in-process registry shared by the tests of a module."""
    yield from _registry()


@pytest.fixture(scope="session")
def xlreg_registry_session() -> Iterator[LocalRegistry]:
    """An in-process registry shared by every test of the session."""
    yield from _registry()


@pytest.fixture
def xlreg_cluster(xlreg_key_pool: Path) -> Iterator[ClusterFactory]:
    """Factory of booted in-process clusters, shut down after the test.

    ``xlreg_cluster(size, endpoints=2, key_bits=1024, key_pool=<pool>,
    name=None, regcred=None, wait=30.0)``; pass ``regcred=`` (e.g.
    ``xlreg_registry.regcred``) to use an existing registry.
    """
    yield from _clusters(xlreg_key_pool)


@pytest.fixture(scope="module")
def xlreg_cluster_module(xlreg_key_pool: Path) -> Iterator[ClusterFactory]:
    """``xlreg_cluster`` whose clusters live until the end of the module."""
    yield from _clusters(xlreg_key_pool)


@pytest.fixture(scope="session")
def xlreg_cluster_session(xlreg_key_pool: Path) -> Iterator[ClusterFactory]:
    """``xlreg_cluster`` whose clusters live until the end of the session."""
    yield from _clusters(xlreg_key_pool)


# The asyncio forms (pytest-asyncio), defined there when it is installed.
from ._pytest_async import *  # noqa: E402,F401,F403
