"""The asyncio host / trio guest bridge, without a server.

Plain test functions: each runs its own asyncio loop through run_with_asyncio_host.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest
import trio
import trio.lowlevel

from tvoice.livekit import (
    AsyncioCancelled,
    current_bridge,
    run_with_asyncio_host,
)


def test_result_and_current_bridge() -> None:
    async def main(a: int, b: int) -> int:
        bridge = current_bridge()
        assert bridge.loop is asyncio.get_running_loop()
        await trio.sleep(0.001)
        return a + b

    assert run_with_asyncio_host(main, 40, 2) == 42


def test_current_bridge_outside_the_host() -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="run_with_asyncio_host"):
            current_bridge()

    trio.run(main)


def test_trio_error_ends_the_host_loop() -> None:
    async def main() -> None:
        await trio.lowlevel.checkpoint()
        raise ValueError("from trio")

    with pytest.raises(ValueError, match="from trio"):
        run_with_asyncio_host(main)


def test_call_returns_and_raises() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0.001)
        return 2 * x

    async def fail() -> None:
        await asyncio.sleep(0)
        raise KeyError("from asyncio")

    async def main() -> int:
        bridge = current_bridge()
        with pytest.raises(KeyError, match="from asyncio"):
            await bridge.call(fail)
        return await bridge.call(double, 21)

    assert run_with_asyncio_host(main) == 42


def test_trio_cancellation_cancels_the_asyncio_task() -> None:
    seen: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            seen.append("cancelled")
            await asyncio.sleep(0.01)  # cleanup that takes a while is waited for
            seen.append("cleaned up")
            raise

    async def main() -> None:
        with trio.fail_after(5):
            with trio.move_on_after(0.05) as scope:
                await current_bridge().call(slow)
            assert scope.cancelled_caught
            seen.append("trio goes on")

    run_with_asyncio_host(main)
    assert seen == ["cancelled", "cleaned up", "trio goes on"]


def test_asyncio_side_cancellation_is_a_clear_error() -> None:
    async def cancelled_by_asyncio() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().call_soon(task.cancel)
        await asyncio.sleep(100)

    async def main() -> None:
        with trio.fail_after(5), pytest.raises(AsyncioCancelled):
            await current_bridge().call(cancelled_by_asyncio)

    run_with_asyncio_host(main)


def test_run_sync_in_trio_from_asyncio_callbacks() -> None:
    async def main() -> list[int]:
        bridge = current_bridge()
        send, receive = trio.open_memory_channel[int](10)
        for i in range(3):
            # An asyncio callback: it may not touch the trio channel itself.
            bridge.loop.call_soon(bridge.run_sync_in_trio, send.send_nowait, i)
        with trio.fail_after(5):
            return [await receive.receive() for _ in range(3)]

    assert run_with_asyncio_host(main) == [0, 1, 2]


def test_a_failing_trio_callback_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    async def main() -> None:
        bridge = current_bridge()
        bridge.loop.call_soon(bridge.run_sync_in_trio, boom)
        await trio.sleep(0.05)

    with caplog.at_level(logging.ERROR, logger="tvoice.livekit"):
        run_with_asyncio_host(main)
    assert "boom" in caplog.text


def test_crossing_channel_is_bounded_and_drops_the_oldest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def produce(channel: object, n: int) -> None:
        assert hasattr(channel, "put")
        for i in range(n):
            channel.put(i)  # never blocks, even with nobody reading
        channel.close()  # type: ignore[attr-defined]
        await asyncio.sleep(0)

    async def main() -> tuple[list[int], int]:
        bridge = current_bridge()
        channel = bridge.channel(10, label="test frames")
        await bridge.call(produce, channel, 100)
        with trio.fail_after(5):
            received = [item async for item in channel.receiver]
        return received, channel.dropped

    with caplog.at_level(logging.WARNING, logger="tvoice.livekit"):
        received, dropped = run_with_asyncio_host(main)
    assert received == list(range(90, 100))
    assert dropped == 90
    assert caplog.text.count("test frames: the trio side is behind") == 1


def test_crossing_channel_keeps_everything_when_trio_keeps_up() -> None:
    async def produce(channel: object) -> None:
        for i in range(50):
            channel.put(i)  # type: ignore[attr-defined]
            await asyncio.sleep(0.001)
        channel.close()  # type: ignore[attr-defined]

    async def main() -> list[int]:
        bridge = current_bridge()
        channel = bridge.channel(4, label="paced")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bridge.call, produce, channel)
            with trio.fail_after(5):
                return [item async for item in channel.receiver]
        raise AssertionError("unreachable")

    assert run_with_asyncio_host(main) == list(range(50))


def test_sigint_unwinds_trio_then_raises_keyboard_interrupt() -> None:
    unwound: list[bool] = []

    async def main() -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            await trio.sleep(10)
        finally:
            unwound.append(True)

    with pytest.raises(KeyboardInterrupt):
        run_with_asyncio_host(main)
    assert unwound == [True]
