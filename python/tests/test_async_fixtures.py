"""The asyncio forms of the pytest fixtures (issue 18 §4), with
pytest-asyncio: registries and clusters made without blocking the event
loop, per test, per module and per session."""

from __future__ import annotations

import asyncio
from typing import Dict

import pytest

import xlreg
from xlreg.testing import AsyncClusterFactory, LocalRegistry

SEEN: Dict[str, str] = {}


@pytest.mark.asyncio
async def test_the_async_registry_serves_the_tests_loop(xlreg_registry_async: LocalRegistry) -> None:
    rc = xlreg_registry_async.regcred
    info = await xlreg.aio.create_cluster(rc, "async-fixture", 2)
    listed = await xlreg.aio.read_members(rc, "async-fixture")
    assert listed.cluster_id == info.id and listed.members == []


@pytest.mark.asyncio
async def test_the_async_cluster_factory_boots_while_the_loop_runs(
    xlreg_cluster_async: AsyncClusterFactory,
) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.ensure_future(tick())
    try:
        c = await xlreg_cluster_async(3, name="async-three")
    finally:
        ticker.cancel()
    assert ticks >= 1  # the loop ran during the boot
    assert len(c.members) == 3
    assert all(len(m.view.members) == 3 for m in c.members)
    assert c.info.name == "async-three"


@pytest.mark.asyncio
async def test_async_module_fixtures_are_shared_one(
    xlreg_registry_async_module: LocalRegistry, xlreg_cluster_async_session: AsyncClusterFactory
) -> None:
    SEEN["module"] = xlreg_registry_async_module.address
    c = await xlreg_cluster_async_session(2, regcred=xlreg_registry_async_module.regcred)
    SEEN["cluster"] = c.info.id
    assert c.regcred.address == xlreg_registry_async_module.address


@pytest.mark.asyncio
async def test_async_module_fixtures_are_shared_two(
    xlreg_registry_async_module: LocalRegistry,
) -> None:
    assert SEEN["module"] == xlreg_registry_async_module.address
    # The session-scoped factory's cluster is still alive (read it back).
    listed = await xlreg.aio.read_members(xlreg_registry_async_module.regcred, cluster_id=SEEN["cluster"])
    assert len(listed.members) == 2
