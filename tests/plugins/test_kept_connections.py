"""A WebSocket TTS keeps one connection open for as long as a session runs: opened when the
session starts, opened again after a backoff when it drops, given up on (once, quietly) after
too many setbacks, and all of it stopped when the session closes. Against FakeCartesia over
the in-memory network, on the autojump clock, so every time is exact."""

import logging

import pytest
import trio
import trio_websocket

from tests.plugins.memory_net import MemoryNetwork
from tests.plugins.test_cartesia import API_KEY, RATE, FakeCartesia, synthesize
from tvoice import Agent, AgentSession, APIConnectionError
from tvoice.testing import FakeAudioOutput
from tvoice_plugins import cartesia
from tvoice_plugins._kept import Backoff


class _Request:
    """A trio-websocket request whose accepted connection the test can reach."""

    def __init__(self, request: trio_websocket.WebSocketRequest, server: "Cartesia") -> None:
        self._request = request
        self._server = server
        self.headers, self.path = request.headers, request.path

    async def reject(self, *args, **kwargs) -> None:
        await self._request.reject(*args, **kwargs)

    async def accept(self) -> trio_websocket.WebSocketConnection:
        ws = await self._request.accept()
        self._server.sockets.append(ws)
        return ws


class Cartesia:
    """FakeCartesia behind a switch: the time of each connection is kept; while ``down``, a
    connection is cut before its handshake."""

    def __init__(self, network: MemoryNetwork) -> None:
        self.fake = FakeCartesia()
        self.fake.port = self.port = network.serve(self._serve)
        self.down = False
        self.attempts: list[float] = []
        self.sockets: list[trio_websocket.WebSocketConnection] = []
        self.t0 = trio.current_time()

    def times(self) -> list[float]:
        return [round(t - self.t0, 6) for t in self.attempts]

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.attempts.append(trio.current_time())
        if self.down:
            await stream.aclose()
            return
        async with stream, trio.open_nursery() as nursery:
            request = await trio_websocket.wrap_server_stream(nursery, stream)
            await self.fake.handle(_Request(request, self))
            nursery.cancel_scope.cancel()

    async def close_idle(self) -> None:
        """Close the last connection, as Cartesia's idle timeout does. The close frame goes
        out at once; the fake's handler ends as soon as it sees the close, which leaves
        trio-websocket's own wait for the answer unfinished: it is not waited for."""
        with trio.move_on_after(0.1):
            await self.sockets[-1].aclose(1001, "idle")

    async def break_idle(self) -> None:
        """Break the last connection (no close frame), as a network that fails does."""
        await self.sockets[-1]._stream.aclose()  # trio-websocket has no public abort


@pytest.fixture
async def server(nursery) -> Cartesia:
    return Cartesia(MemoryNetwork(nursery).install())


async def sleep_until(server: Cartesia, t: float) -> None:
    await trio.sleep_until(server.t0 + t)


def make_tts(server: Cartesia, **options) -> cartesia.TTS:
    options.setdefault("api_key", API_KEY)
    return cartesia.TTS(base_url=server.fake.url, sample_rate=RATE, **options)


def test_the_backoff_doubles_to_its_maximum_and_gives_up_after_its_limit():
    backoff = Backoff()
    delays = []
    while not backoff.gave_up:
        delays.append(backoff.delay)
        backoff.setback()
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    backoff.reset()
    assert (backoff.delay, backoff.gave_up) == (0.0, False)
    backoff.lost(lived=3.0)  # lost soon after it opened: one more setback
    backoff.lost(lived=3.0)
    assert backoff.delay == 1.0
    backoff.lost(lived=8.0)  # it had proved itself: the count starts again
    assert backoff.delay == 0.5


async def test_a_session_keeps_its_connection_open_and_opens_it_again_when_it_drops(
    server, autojump_clock
):
    tts = make_tts(server)
    async with AgentSession(tts=tts) as session:
        await session.start(Agent(instructions="Hi."), audio_output=FakeAudioOutput())
        await sleep_until(server, 1.0)
        assert server.times() == [0.0]  # opened as the session started
        assert server.fake.contexts == []

        await server.close_idle()  # 1 s after it opened
        await sleep_until(server, 5.0)
        assert server.times() == [0.0, 1.5]  # the first wait of the backoff

        await sleep_until(server, 20.0)
        await server.break_idle()  # it had stayed open 18.5 s: the waits start again
        await sleep_until(server, 30.0)
        assert server.times() == [0.0, 1.5, 20.5]

        # The next reply speaks on the connection opened again: it does not connect.
        items = await synthesize(tts, "Hello there.")
        assert "".join(i.delta_text for i in items).split() == ["Hello", "there."]
        assert len(server.attempts) == 3
        assert len(server.fake.contexts) == 1
        session.shutdown()

    # Closed: nothing keeps the connection any more, and no task is left to open another.
    await server.break_idle()
    await sleep_until(server, 100.0)
    assert len(server.attempts) == 3
    await tts.aclose()


async def test_a_drop_soon_after_each_open_backs_off_further(server, autojump_clock, nursery):
    tts = make_tts(server)
    nursery.start_soon(tts.keep_warm)
    for t in (0.1, 0.7, 1.8):  # each 0.1 s after its connection opened
        await sleep_until(server, t)
        await server.close_idle()
    await sleep_until(server, 10.0)
    assert server.times() == [0.0, 0.6, 1.7, 3.8]
    await tts.aclose()  # stops the keeper too
    await sleep_until(server, 60.0)
    assert len(server.attempts) == 4


async def test_repeated_failures_back_off_then_stop_and_say_so_once(
    server, autojump_clock, nursery, caplog
):
    caplog.set_level(logging.DEBUG, logger="tvoice.plugins")
    server.down = True
    tts = make_tts(server)
    nursery.start_soon(tts.keep_warm)
    await sleep_until(server, 200.0)
    assert server.times() == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 23.5, 31.5]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "replies connect when they need one" in warnings[0].getMessage()
    assert API_KEY not in caplog.text

    # A reply still connects (on demand); the connection it gives back is kept warm again.
    server.down = False
    items = await synthesize(tts, "Back.")
    assert items[-1].is_final
    assert server.times()[-1] == 200.0
    await sleep_until(server, 210.0)
    await server.close_idle()
    await sleep_until(server, 220.0)
    assert server.times()[-2:] == [200.0, 210.5]
    await tts.aclose()


async def test_a_bad_key_stops_the_keeper_at_once(server, autojump_clock, nursery, caplog):
    tts = make_tts(server, api_key="sk_car_wrong")
    nursery.start_soon(tts.keep_warm)
    await sleep_until(server, 60.0)
    assert server.times() == [0.0]
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    await tts.aclose()


async def test_a_connection_a_reply_loses_is_opened_again_after_it(server, autojump_clock, nursery):
    server.fake.mode, server.fake.drop_after = "drop", 1
    tts = make_tts(server)
    nursery.start_soon(tts.keep_warm)
    await sleep_until(server, 1.0)
    with pytest.raises(APIConnectionError):
        await synthesize(tts, "Two words.")
    failed_at = round(trio.current_time() - server.t0, 6)
    await sleep_until(server, 10.0)
    assert server.times() == [0.0, failed_at + 0.5]
    await tts.aclose()
