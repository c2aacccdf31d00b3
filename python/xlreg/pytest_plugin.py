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
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

from .testing import LocalCluster, LocalRegistry


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


@pytest.fixture
def xlreg_registry() -> Iterator[LocalRegistry]:
    """An in-process registry for this test (stopped afterwards)."""
    with LocalRegistry() as r:
        yield r


@pytest.fixture
def xlreg_cluster(xlreg_key_pool: Path) -> Iterator[Callable[..., LocalCluster]]:
    """Factory of booted in-process clusters, shut down after the test.

    ``xlreg_cluster(size, endpoints=2, key_bits=1024, key_pool=<pool>,
    name=None, regcred=None, wait=30.0)``; pass ``regcred=`` (e.g.
    ``xlreg_registry.regcred``) to use an existing registry.
    """
    made: List[LocalCluster] = []

    def make(size: int, **kw: Any) -> LocalCluster:
        kw.setdefault("key_pool", str(xlreg_key_pool))
        c = LocalCluster(size, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.shutdown()
