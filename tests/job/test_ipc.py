"""The job process protocol: every message survives the wire, split anywhere; garbage is named."""

import json
import re
import struct

import attrs
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from tvoice.job._ipc import (
    MAX_MESSAGE_SIZE,
    Decoder,
    Exiting,
    InitializeProcess,
    JobEnded,
    JobStarted,
    MessageStream,
    Ping,
    Pong,
    ProcessReady,
    ProtocolError,
    ShutdownJob,
    StartJob,
    decode_payload,
    encode,
)

text = st.text(max_size=50)
floats = st.floats(allow_nan=False, allow_infinity=False)
messages = st.one_of(
    st.builds(
        InitializeProcess,
        target=text,
        log_level=st.integers(0, 50),
        shutdown_timeout=floats,
    ),
    st.builds(ProcessReady, error=text),
    st.builds(
        StartJob,
        job_id=text,
        room_name=text,
        agent_name=text,
        metadata=text,
        url=text,
        token=text,
        worker_id=text,
        participant_identity=text,
    ),
    st.builds(JobStarted),
    st.builds(JobEnded, success=st.booleans(), error=text),
    st.builds(ShutdownJob, reason=text),
    st.builds(Ping, t=floats),
    st.builds(Pong, t=floats, last=floats),
    st.builds(Exiting, reason=text),
)


@given(st.lists(messages, max_size=8), st.lists(st.integers(0, 400), max_size=10))
def test_messages_survive_any_split(sent, cuts):
    wire = b"".join(encode(m) for m in sent)
    points = sorted({min(c, len(wire)) for c in cuts})
    decoder = Decoder()
    received = []
    start = 0
    for point in [*points, len(wire)]:
        received += decoder.feed(wire[start:point])
        start = point
    assert received == sent
    assert decoder.pending == 0


@given(st.lists(st.binary(max_size=40), max_size=6), st.booleans())
def test_random_bytes_give_messages_or_a_protocol_error(chunks, framed):
    decoder = Decoder(max_size=1000)
    try:
        for chunk in chunks:
            for message in decoder.feed(frame(chunk) if framed else chunk):
                assert type(message).__name__ in _NAMES
    except ProtocolError:
        pass


_NAMES = {
    "InitializeProcess",
    "ProcessReady",
    "StartJob",
    "JobStarted",
    "JobEnded",
    "ShutdownJob",
    "Ping",
    "Pong",
    "Exiting",
}


def test_the_wire_format_is_a_length_and_a_json_object():
    wire = encode(JobEnded(success=False, error="boom"))
    (size,) = struct.unpack(">I", wire[:4])
    assert size == len(wire) - 4
    assert json.loads(wire[4:]) == {"type": "JobEnded", "success": False, "error": "boom"}


def test_defaults_may_be_left_out():
    assert decode_payload(b'{"type": "ShutdownJob"}') == ShutdownJob(reason="")
    assert decode_payload(b'{"type": "Ping", "t": 3}') == Ping(t=3)


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"\xff\xfe", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (b'{"t": 1}', "unknown message type None"),
        (b'{"type": "Launch"}', "unknown message type 'Launch'"),
        (b'{"type": "Ping"}', "Ping lacks its 't' field"),
        (b'{"type": "Ping", "t": "soon"}', "Ping.t must be float"),
        (b'{"type": "JobEnded", "success": 1}', "JobEnded.success must be bool"),
        (b'{"type": "Ping", "t": true}', "Ping.t must be float"),
        (
            b'{"type": "InitializeProcess", "target": "a", "log_level": 1.5}',
            "log_level must be int",
        ),
        (b'{"type": "Exiting", "why": "x"}', "Exiting has no field(s) why"),
    ],
)
def test_garbage_is_named(payload, error):
    decoder = Decoder()
    with pytest.raises(ProtocolError, match=re.escape(error)):
        decoder.feed(frame(payload))


def test_deeply_nested_json_is_garbage_too():
    with pytest.raises(ProtocolError, match="not valid JSON"):
        Decoder().feed(frame(b"[" * 100_000))


def test_a_message_over_the_limit_is_refused_from_its_header():
    decoder = Decoder(max_size=100)
    with pytest.raises(ProtocolError, match="101 bytes is over the limit of 100"):
        decoder.feed(struct.pack(">I", 101))
    # The stream cannot be trusted after that.
    with pytest.raises(ProtocolError, match="already failed"):
        decoder.feed(encode(JobStarted()))


def test_encode_refuses_a_message_over_the_limit():
    with pytest.raises(ValueError, match="over the 8 MiB limit"):
        encode(ProcessReady(error="x" * MAX_MESSAGE_SIZE))


def test_every_message_class_is_frozen():
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Ping(t=1.0).t = 2.0  # type: ignore[misc]


async def test_a_message_stream_over_a_socketpair():
    a, b = trio.testing.memory_stream_pair()
    left, right = MessageStream(a), MessageStream(b)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(left.send, Ping(t=1.0))
        nursery.start_soon(left.send, ShutdownJob(reason="bye"))
    assert {await right.receive(), await right.receive()} == {
        Ping(t=1.0),
        ShutdownJob(reason="bye"),
    }
    await left.aclose()
    assert await right.receive() is None


async def test_a_stream_cut_inside_a_message_is_an_error():
    a, b = trio.testing.memory_stream_pair()
    await a.send_all(encode(Ping(t=1.0))[:-2])
    await a.aclose()
    with pytest.raises(ProtocolError, match="ended inside a message"):
        await MessageStream(b).receive()


def test_a_start_job_repr_has_no_room_token():
    assert "ROOM-TOKEN" not in repr(StartJob(job_id="j", room_name="r", token="ROOM-TOKEN"))
