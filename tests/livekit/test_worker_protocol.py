"""The /agent protocol's messages, both ways, against livekit-protocol's own protobuf classes."""

from __future__ import annotations

import contextlib

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from livekit.protocol import agent as pb
from livekit.protocol import models

from tvoice.livekit import protocol
from tvoice.livekit.protocol import (
    AvailabilityRequest,
    AvailabilityResponse,
    GoAway,
    Job,
    JobAssignment,
    JobStatus,
    JobTermination,
    JobType,
    ProtocolError,
    Register,
    Registered,
    ServerPong,
    UpdateJobStatus,
    UpdateWorkerStatus,
    WorkerPermissions,
    WorkerPing,
    WorkerStatus,
    agent_token,
    agent_url,
    decode,
    encode,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:The HMAC key is 6 bytes long:jwt.warnings.InsecureKeyLengthWarning"
)


def _worker_message(message: protocol.WorkerMessage) -> pb.WorkerMessage:
    parsed = pb.WorkerMessage()
    parsed.ParseFromString(encode(message))
    return parsed


def test_register_carries_the_agent_name_job_type_and_agent_permission():
    parsed = _worker_message(
        Register(
            agent_name="support",
            version="0.1.0",
            namespace="ns",
            permissions=WorkerPermissions(
                hidden=True, can_publish_data=False, can_publish_sources=("microphone", 4)
            ),
        )
    )
    assert parsed.WhichOneof("message") == "register"
    reg = parsed.register
    assert (reg.agent_name, reg.version, reg.namespace) == ("support", "0.1.0", "ns")
    assert reg.type == pb.JT_ROOM
    perms = reg.allowed_permissions
    assert (perms.agent, perms.hidden, perms.can_publish, perms.can_subscribe) == (True,) * 4
    assert not perms.can_publish_data
    assert list(perms.can_publish_sources) == [
        models.TrackSource.MICROPHONE,
        models.TrackSource.SCREEN_SHARE_AUDIO,
    ]


def test_unknown_track_sources_are_refused_when_the_permissions_are_made():
    with pytest.raises(ValueError, match="unknown track source 'speaker'"):
        WorkerPermissions(can_publish_sources=("speaker",))
    with pytest.raises(ValueError, match="unknown track source 9"):
        WorkerPermissions(can_publish_sources=(9,))


def test_availability_response_carries_the_participant():
    parsed = _worker_message(
        AvailabilityResponse(
            job_id="AJ_1",
            available=True,
            participant_identity="agent-1",
            participant_name="Agent",
            participant_metadata="{}",
            participant_attributes={"role": "helper"},
        )
    )
    avail = parsed.availability
    assert (avail.job_id, avail.available) == ("AJ_1", True)
    assert (avail.participant_identity, avail.participant_name) == ("agent-1", "Agent")
    assert avail.participant_metadata == "{}"
    assert dict(avail.participant_attributes) == {"role": "helper"}
    refused = _worker_message(AvailabilityResponse(job_id="AJ_2", available=False)).availability
    assert (refused.job_id, refused.available) == ("AJ_2", False)


@pytest.mark.parametrize(
    ("status", "wire"),
    [
        (JobStatus.PENDING, pb.JS_PENDING),
        (JobStatus.RUNNING, pb.JS_RUNNING),
        (JobStatus.SUCCESS, pb.JS_SUCCESS),
        (JobStatus.FAILED, pb.JS_FAILED),
    ],
)
def test_job_status(status: JobStatus, wire: int):
    parsed = _worker_message(UpdateJobStatus(job_id="AJ_1", status=status, error="boom"))
    assert parsed.update_job.job_id == "AJ_1"
    assert parsed.update_job.status == wire
    assert parsed.update_job.error == "boom"


def test_worker_status_and_ping():
    update = _worker_message(
        UpdateWorkerStatus(status=WorkerStatus.FULL, load=0.75, job_count=3, draining=True)
    ).update_worker
    assert update.HasField("status")  # optional on the wire: the server ignores a missing one
    assert update.status == pb.WS_FULL
    assert update.load == pytest.approx(0.75)
    assert (update.job_count, update.draining) == (3, True)
    available = _worker_message(UpdateWorkerStatus(status=WorkerStatus.AVAILABLE, load=0.0))
    assert available.update_worker.HasField("status")
    assert available.update_worker.status == pb.WS_AVAILABLE
    assert _worker_message(WorkerPing(timestamp=1234)).ping.timestamp == 1234


@pytest.mark.parametrize("load", [float("nan"), float("inf"), -0.1])
def test_a_load_that_is_not_a_finite_positive_number_is_refused(load: float):
    with pytest.raises(ValueError, match="load must be"):
        UpdateWorkerStatus(status=WorkerStatus.AVAILABLE, load=load)


def test_encode_refuses_what_is_not_a_worker_message():
    with pytest.raises(TypeError, match="not a worker message"):
        encode(JobTermination(job_id="AJ_1"))  # type: ignore[arg-type]


def _server(**fields: object) -> bytes:
    data: bytes = pb.ServerMessage(**fields).SerializeToString()  # type: ignore[arg-type]
    return data


def _pb_job(**fields: object) -> pb.Job:
    defaults: dict[str, object] = {
        "id": "AJ_1",
        "dispatch_id": "AD_1",
        "type": pb.JT_ROOM,
        "room": models.Room(name="lobby", sid="RM_1"),
        "agent_name": "support",
        "namespace": "",
        "metadata": '{"lang": "en"}',
        "attributes": {"a": "b"},
    }
    return pb.Job(**(defaults | fields))  # type: ignore[arg-type]


def test_decode_registration():
    data = _server(
        register=pb.RegisterWorkerResponse(
            worker_id="AW_1",
            server_info=models.ServerInfo(version="1.13.5", region="here", node_id="ND_1"),
        )
    )
    assert decode(data) == Registered(
        worker_id="AW_1", server_version="1.13.5", region="here", node_id="ND_1"
    )


def test_decode_availability_request_with_the_job_description():
    message = decode(_server(availability=pb.AvailabilityRequest(job=_pb_job(), resuming=True)))
    assert message == AvailabilityRequest(
        job=Job(
            id="AJ_1",
            room_name="lobby",
            room_sid="RM_1",
            dispatch_id="AD_1",
            agent_name="support",
            metadata='{"lang": "en"}',
            attributes={"a": "b"},
        ),
        resuming=True,
    )


def test_decode_publisher_job_names_its_participant():
    job = _pb_job(type=pb.JT_PUBLISHER, participant=models.ParticipantInfo(identity="alice"))
    message = decode(_server(availability=pb.AvailabilityRequest(job=job)))
    assert isinstance(message, AvailabilityRequest)
    assert message.job.type is JobType.PUBLISHER
    assert message.job.participant_identity == "alice"


def test_decode_assignment_termination_pong_go_away():
    assignment = decode(
        _server(assignment=pb.JobAssignment(job=_pb_job(), token="tok", url="ws://x"))
    )
    assert isinstance(assignment, JobAssignment)
    assert (assignment.job.id, assignment.token, assignment.url) == ("AJ_1", "tok", "ws://x")
    without_url = decode(_server(assignment=pb.JobAssignment(job=_pb_job(), token="tok")))
    assert isinstance(without_url, JobAssignment)
    assert without_url.url == ""
    assert decode(_server(termination=pb.JobTermination(job_id="AJ_1"))) == JobTermination(
        job_id="AJ_1"
    )
    assert decode(_server(pong=pb.WorkerPong(last_timestamp=5, timestamp=9))) == ServerPong(
        last_timestamp=5, timestamp=9
    )
    assert decode(_server(go_away=pb.AgentHttp.GoAway(reason="bye"))) == GoAway(reason="bye")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty server message"),
        (b"\xff\xff\xff", "undecodable"),
        (_server(register=pb.RegisterWorkerResponse()), "without a worker id"),
        (_server(availability=pb.AvailabilityRequest()), "without a job"),
        (_server(availability=pb.AvailabilityRequest(job=pb.Job())), "job without an id"),
        (_server(assignment=pb.JobAssignment(job=_pb_job())), "without a token"),
        (_server(assignment=pb.JobAssignment(token="t")), "without a job"),
        (_server(termination=pb.JobTermination()), "without a job id"),
        (
            _server(availability=pb.AvailabilityRequest(job=pb.Job(id="AJ_1", type=7))),  # type: ignore[arg-type]
            "unknown type",
        ),
        # A worker's ping echoed back reads as a termination (field 5) with no job id.
        (pb.WorkerMessage(ping=pb.WorkerPing(timestamp=1)).SerializeToString(), "without a job"),
    ],
)
def test_decode_refuses_bad_frames_with_a_clear_error(data: bytes, match: str):
    with pytest.raises(ProtocolError, match=match):
        decode(data)


def test_decode_refuses_a_text_frame():
    with pytest.raises(ProtocolError, match="expected a binary frame, got str"):
        decode("hello")  # type: ignore[arg-type]


@given(st.binary(max_size=200))
def test_decode_never_raises_anything_but_protocol_error(data: bytes):
    with contextlib.suppress(ProtocolError):
        decode(data)


def test_agent_token_has_the_agent_grant():
    token = agent_token("devkey", "secret")
    claims = jwt.decode(token, "secret", algorithms=["HS256"])
    assert claims["iss"] == "devkey"
    assert claims["video"]["agent"] is True
    assert "roomJoin" not in claims["video"]
    assert claims["exp"] - claims["nbf"] == 600


@pytest.mark.parametrize(("key", "secret"), [("", "secret"), ("devkey", "")])
def test_agent_token_needs_key_and_secret(key: str, secret: str):
    with pytest.raises(ValueError, match="API key and secret are required"):
        agent_token(key, secret)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://127.0.0.1:7880", "ws://127.0.0.1:7880/agent"),
        ("ws://127.0.0.1:7880/", "ws://127.0.0.1:7880/agent"),
        ("wss://x.livekit.cloud", "wss://x.livekit.cloud/agent"),
        ("http://localhost:7880", "ws://localhost:7880/agent"),
        ("HTTPS://x.example/lk/", "wss://x.example/lk/agent"),
    ],
)
def test_agent_url(url: str, expected: str):
    assert agent_url(url) == expected


@pytest.mark.parametrize("url", ["", "127.0.0.1:7880", "ftp://x", "ws://"])
def test_agent_url_refuses_what_is_not_a_server_url(url: str):
    with pytest.raises(ValueError, match="not a LiveKit server URL"):
        agent_url(url)
