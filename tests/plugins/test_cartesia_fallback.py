"""A ``tts.FallbackAdapter`` over Cartesia then ElevenLabs, each against its loopback server:
the first server drops every connection before any audio, the second answers, and the user
hears one reply."""

import pytest

from tests.plugins.test_cartesia import FakeCartesia
from tests.plugins.test_cartesia import make_tts as make_cartesia
from tests.plugins.test_elevenlabs import FakeElevenLabs
from tests.plugins.test_elevenlabs import make_tts as make_elevenlabs
from tvoice import tts


@pytest.fixture
async def cartesia_server(nursery) -> FakeCartesia:
    return await nursery.start(FakeCartesia().run)


@pytest.fixture
async def elevenlabs_server(nursery) -> FakeElevenLabs:
    return await nursery.start(FakeElevenLabs().run)


async def test_the_second_provider_speaks_when_the_first_drops(
    cartesia_server, elevenlabs_server, autojump_clock
):
    cartesia_server.mode, cartesia_server.drop_after = "drop", 0
    first, second = make_cartesia(cartesia_server), make_elevenlabs(elevenlabs_server)
    fallback = tts.FallbackAdapter([first, second])
    async with fallback.stream() as stream:
        await stream.push_text("Hello from the backup.")
        stream.end_input()
        items = await stream.collect()
    assert len(cartesia_server.handshakes) == 2  # the first attempt and its one retry
    assert len(elevenlabs_server.contexts) == 1
    assert [i.is_final for i in items].count(True) == 1
    assert sum(i.frame.duration for i in items) == pytest.approx(4 * 0.2)  # heard once
    await first.aclose()
    await second.aclose()
