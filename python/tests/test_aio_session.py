"""``xlreg.aio.Session`` (issue 18 §4): the blocking ``xlreg.Session``
step for step as coroutines and an async context manager, plus
``delete_cluster`` on both."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

import xlreg
from xlreg.testing import LocalRegistry


def _node(name: str, port: int) -> xlreg.Node:
    return xlreg.Node.generate(name=name, endpoints=[f"127.0.0.1:{port}"], key_bits=1024)


def test_an_async_session_creates_registers_joins_and_lists(xlreg_registry: LocalRegistry) -> None:
    node = _node("a0", 7400)

    async def main() -> None:
        s = xlreg.aio.Session(xlreg_registry.regcred, timeout=10)
        assert not s.is_open and s.address is None
        async with s:
            assert s.is_open and s.address == xlreg_registry.address
            assert await s.register(node) == node.id
            info = await s.create("steps", 2)
            assert info.name == "steps" and info.max_size == 2
            joined = await s.join("steps")
            assert joined.id == info.id
            members = await s.get_members(info.id)
            assert [m.id for m in members] == [node.id]
            assert await s.get_members(info.id, [1]) == []
        assert not s.is_open
        await s.bye()  # again: nothing

    asyncio.run(main())


def test_steps_out_of_order_or_at_once_or_after_bye_are_usage_errors(
    xlreg_registry: LocalRegistry,
) -> None:
    async def main() -> None:
        s = xlreg.aio.Session(xlreg_registry.regcred)
        with pytest.raises(xlreg.UsageError, match="not connected"):
            await s.create("x", 2)
        await s.connect()
        with pytest.raises(xlreg.UsageError, match="already connected"):
            await s.connect()
        # Two steps at once: the second is refused while the first (a
        # round trip to the registry) runs.
        first, second = await asyncio.gather(
            s.register(_node("x0", 7406)), s.create("y", 2), return_exceptions=True
        )
        assert isinstance(first, str), first
        assert isinstance(second, xlreg.UsageError) and "in use" in str(second), second
        with pytest.raises(xlreg.UsageError, match="Member is not allowed right after Member"):
            await s.register(_node("x1", 7407))  # the first step did happen
        with pytest.raises(xlreg.UsageError):
            await s.get_members("00" * 20, [64])
        await s.bye()
        with pytest.raises(xlreg.UsageError, match="closed"):
            await s.register(_node("late", 7401))

    asyncio.run(main())


def test_a_cancelled_step_closes_the_async_session(xlreg_registry: LocalRegistry) -> None:
    # A registry that accepts the connection and never answers the Hello.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    text = xlreg_registry.regcred.to_text().replace(
        f"TcpEndPoint: {xlreg_registry.address}", f"TcpEndPoint: 127.0.0.1:{port}"
    )
    rc = xlreg.RegCred.parse(text)
    assert rc.address == f"127.0.0.1:{port}"

    async def main() -> None:
        s = xlreg.aio.Session(rc, timeout=30)
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(s.connect(), 0.3)
        assert time.monotonic() - t0 < 5
        for _ in range(200):  # the Rust task is aborted just after
            if not s.is_open:
                break
            await asyncio.sleep(0.01)
        assert not s.is_open
        with pytest.raises(xlreg.UsageError, match="closed"):
            await s.connect()
        with pytest.raises(xlreg.UsageError, match="closed"):
            await s.register(_node("c0", 7402))

    try:
        asyncio.run(main())
    finally:
        silent.close()


def test_a_member_deletes_its_cluster_async_and_blocking(xlreg_registry: LocalRegistry) -> None:
    rc = xlreg_registry.regcred
    for how in ("async", "blocking"):
        name = f"doomed-{how}"
        info = xlreg.create_cluster(rc, name, 2)
        member = _node(f"m-{how}", 7403)
        xlreg.boot(rc, member, cluster=name, wait=None)
        stranger = _node(f"s-{how}", 7404)
        if how == "async":
            async def main() -> None:
                async with xlreg.aio.Session(rc) as s:
                    await s.register(stranger)
                    with pytest.raises(xlreg.XlRegError, match="only a member"):
                        await s.delete_cluster(name)
                async with xlreg.aio.Session(rc) as s:
                    await s.register(member)
                    await s.delete_cluster(cluster_id=info.id)

            asyncio.run(main())
        else:
            with xlreg.Session(rc) as s:
                s.register(stranger)
                with pytest.raises(xlreg.XlRegError, match="only a member"):
                    s.delete_cluster(name)
            with xlreg.Session(rc) as s:
                s.register(member)
                s.delete_cluster(cluster_id=info.id)
        with pytest.raises(xlreg.XlRegError, match="cannot find cluster"):
            with xlreg.Session(rc) as s:
                s.register(_node(f"late-{how}", 7405))
                s.join(cluster_id=info.id)
