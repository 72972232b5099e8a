"""The loopback LiveKit server works for the SDK: room service API, and audio between two peers.

The livekit SDK is asyncio, so these are plain functions that run their own asyncio loop, each
step bounded by ``asyncio.timeout``; tvoice's bridge is tested elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
from livekit import api, rtc

from tvoice.testing import LiveKitServer

pytestmark = [
    pytest.mark.slow,
    # PyJWT warns that the fixture's secret ("secret", the livekit dev key) is short for HS256.
    pytest.mark.filterwarnings(
        "ignore:The HMAC key is 6 bytes long:jwt.warnings.InsecureKeyLengthWarning"
    ),
]

SAMPLE_RATE = 48000
FRAME_SAMPLES = SAMPLE_RATE // 100  # 10 ms
TONE_HZ = 440.0


def test_room_service_creates_and_lists_rooms(livekit_server: LiveKitServer) -> None:
    name = f"room-{uuid.uuid4().hex[:8]}"

    async def main() -> tuple[api.Room, list[str]]:
        async with (
            asyncio.timeout(20),
            api.LiveKitAPI(
                livekit_server.http_url, livekit_server.api_key, livekit_server.api_secret
            ) as lkapi,
        ):
            created = await lkapi.room.create_room(api.CreateRoomRequest(name=name))
            listed = await lkapi.room.list_rooms(api.ListRoomsRequest())
            await lkapi.room.delete_room(api.DeleteRoomRequest(room=name))
        return created, [room.name for room in listed.rooms]

    created, names = asyncio.run(main())
    assert created.name == name
    assert created.sid.startswith("RM_")
    assert name in names


def test_audio_travels_between_two_participants(livekit_server: LiveKitServer) -> None:
    room_name = f"room-{uuid.uuid4().hex[:8]}"

    async def main() -> np.ndarray:
        async with (
            _connected(livekit_server, room_name, "listener") as listener,
            _connected(livekit_server, room_name, "speaker") as speaker,
        ):
            subscribed: asyncio.Future[rtc.RemoteAudioTrack] = asyncio.Future()

            @listener.on("track_subscribed")
            def _on_track(track: rtc.Track, *_: object) -> None:
                if isinstance(track, rtc.RemoteAudioTrack) and not subscribed.done():
                    subscribed.set_result(track)

            source = rtc.AudioSource(SAMPLE_RATE, 1)
            track = rtc.LocalAudioTrack.create_audio_track("tone", source)
            options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            async with asyncio.timeout(15):
                await speaker.local_participant.publish_track(track, options)
            async with asyncio.TaskGroup() as tasks:
                tone = tasks.create_task(_play_tone(source))
                try:
                    async with asyncio.timeout(15):
                        remote = await subscribed
                        return await _first_loud_audio(remote, seconds=0.2)
                finally:
                    tone.cancel()
                    await source.aclose()

    heard = asyncio.run(main())
    # What came out of Opus and two WebRTC stacks is still a 440 Hz tone.
    spectrum = np.abs(np.fft.rfft(heard * np.hanning(len(heard))))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(heard)
    assert abs(peak_hz - TONE_HZ) < 10


@contextlib.asynccontextmanager
async def _connected(
    server: LiveKitServer, room_name: str, identity: str
) -> AsyncIterator[rtc.Room]:
    token = (
        api.AccessToken(server.api_key, server.api_secret)
        .with_identity(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room_name))
        .to_jwt()
    )
    room = rtc.Room()
    try:
        try:
            async with asyncio.timeout(15):
                await room.connect(server.url, token)
        except TimeoutError:
            # libwebrtc gathers no loopback candidates: with no other address, ICE never starts.
            pytest.fail(
                f"{identity} could not connect in 15 s (does this machine have an address besides"
                f" loopback?); server log:\n{server.log_tail()}"
            )
        yield room
    finally:
        async with asyncio.timeout(10):
            await room.disconnect()


async def _play_tone(source: rtc.AudioSource) -> None:
    """A 440 Hz tone at half scale, 10 ms per frame; capture_frame paces it in real time."""
    t = np.arange(FRAME_SAMPLES) / SAMPLE_RATE
    for index in itertools.count():
        phase = 2 * np.pi * TONE_HZ * (t + index * FRAME_SAMPLES / SAMPLE_RATE)
        samples = (0.5 * 32767 * np.sin(phase)).astype(np.int16)
        frame = rtc.AudioFrame(samples.tobytes(), SAMPLE_RATE, 1, FRAME_SAMPLES)
        await source.capture_frame(frame)


async def _first_loud_audio(track: rtc.RemoteAudioTrack, *, seconds: float) -> np.ndarray:
    """``seconds`` of received audio, from the first frame that is clearly not silence."""
    stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
    collected: list[np.ndarray] = []
    try:
        async for event in stream:
            samples = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float64)
            if collected or np.sqrt(np.mean(samples**2)) > 1000:
                collected.append(samples)
            if sum(len(c) for c in collected) >= seconds * SAMPLE_RATE:
                return np.concatenate(collected)
    finally:
        await stream.aclose()
    raise AssertionError("the audio stream ended before any sound arrived")
