"""The worker's side of LiveKit's ``/agent`` protocol, sans I/O.

A worker holds one WebSocket to ``<server>/agent`` (see :func:`agent_url`), authenticated by a
JWT with the agent grant (:func:`agent_token`). Every frame is a binary protobuf message from
livekit-protocol's ``livekit_agent.proto``: the worker sends ``WorkerMessage``, the server sends
``ServerMessage``. This module translates between those and tvoice's own frozen message classes,
so the worker never touches protobuf::

    worker                                   server
    Register(agent_name, ...)          ->
                                       <-    Registered(worker_id)
    UpdateWorkerStatus(status, load)   ->    (every 2.5 s)
                                       <-    AvailabilityRequest(job)
    AvailabilityResponse(job_id, ...)  ->    (within 10 s, or the server asks another worker)
                                       <-    JobAssignment(job, token, url)
    UpdateJobStatus(job_id, status)    ->    (when the job ends)
                                       <-    JobTermination(job_id)  (room closed...)
    WorkerPing(timestamp)              ->
                                       <-    ServerPong(last_timestamp, timestamp)

What livekit-server v1.13.5 does with it (``pkg/agent/worker.go``, ``pkg/service/agentservice.go``):
it never pings the worker, answers a ``WorkerPing`` with a pong, waits 10 s for the
registration and 10 s for an availability answer, builds the agent's room token itself (the
assignment's ``url`` is empty on a single server: join the server the worker registered with),
marks the job running when it assigns it, and closes the socket on any message it cannot handle.
``MigrateJobRequest`` and ``SimulateJobRequest`` are not modelled: the open-source server ignores
the first, and the second is a development shortcut.

Nothing here does I/O; :func:`decode` never raises anything but :class:`ProtocolError`.
"""

from __future__ import annotations

import datetime
import enum
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
from livekit.protocol import agent as _pb
from livekit.protocol import models as _models

from ._permissions import WorkerPermissions

__all__ = [
    "AvailabilityRequest",
    "AvailabilityResponse",
    "GoAway",
    "Job",
    "JobAssignment",
    "JobStatus",
    "JobTermination",
    "JobType",
    "ProtocolError",
    "Register",
    "Registered",
    "ServerMessage",
    "ServerPong",
    "UpdateJobStatus",
    "UpdateWorkerStatus",
    "WorkerMessage",
    "WorkerPermissions",
    "WorkerPing",
    "WorkerStatus",
    "agent_token",
    "agent_url",
    "decode",
    "encode",
]


class ProtocolError(Exception):
    """A frame from the server that is not a server message this worker understands."""


class JobType(enum.Enum):
    """What a worker is dispatched for: one job per room, per publisher, or per participant."""

    ROOM = _pb.JT_ROOM
    PUBLISHER = _pb.JT_PUBLISHER
    PARTICIPANT = _pb.JT_PARTICIPANT


class WorkerStatus(enum.Enum):
    """Whether the server may offer the worker new jobs."""

    AVAILABLE = "available"
    FULL = "full"


class JobStatus(enum.Enum):
    """A job's state as the worker reports it."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


_WORKER_STATUS = {WorkerStatus.AVAILABLE: _pb.WS_AVAILABLE, WorkerStatus.FULL: _pb.WS_FULL}
_JOB_STATUS = {
    JobStatus.PENDING: _pb.JS_PENDING,
    JobStatus.RUNNING: _pb.JS_RUNNING,
    JobStatus.SUCCESS: _pb.JS_SUCCESS,
    JobStatus.FAILED: _pb.JS_FAILED,
}


@attrs.frozen(kw_only=True)
class Job:
    """A job the server offers or assigns: which room, which dispatch, with what metadata."""

    id: str
    room_name: str
    room_sid: str = ""
    dispatch_id: str = ""
    agent_name: str = ""
    namespace: str = ""
    metadata: str = ""
    type: JobType = JobType.ROOM
    participant_identity: str = ""
    """The participant a publisher or participant job is for ("" for a room job)."""
    attributes: Mapping[str, str] = attrs.field(factory=dict)


# Worker -> server.


@attrs.frozen(kw_only=True)
class Register:
    """The first message on a connection: who this worker is and which jobs it takes."""

    agent_name: str = ""
    version: str = ""
    namespace: str = ""
    type: JobType = JobType.ROOM
    permissions: WorkerPermissions = attrs.field(factory=WorkerPermissions)


@attrs.frozen(kw_only=True)
class AvailabilityResponse:
    """The answer to an :class:`AvailabilityRequest`: take the job (as this participant) or not."""

    job_id: str
    available: bool
    participant_identity: str = ""
    participant_name: str = ""
    participant_metadata: str = ""
    participant_attributes: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class UpdateJobStatus:
    """A job's new status; ``error`` says why a failed job failed."""

    job_id: str
    status: JobStatus
    error: str = ""


def _finite_load(_: object, __: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"load must be a finite number >= 0, not {value!r}")


@attrs.frozen(kw_only=True)
class UpdateWorkerStatus:
    """The worker's load in [0, 1] and job count; ``FULL`` keeps new jobs away."""

    status: WorkerStatus
    load: float = attrs.field(validator=_finite_load)
    job_count: int = 0
    draining: bool = False


@attrs.frozen(kw_only=True)
class WorkerPing:
    """A keepalive; the server echoes ``timestamp`` back in its :class:`ServerPong`."""

    timestamp: int


WorkerMessage = Register | AvailabilityResponse | UpdateJobStatus | UpdateWorkerStatus | WorkerPing

# Server -> worker.


@attrs.frozen(kw_only=True)
class Registered:
    """The server accepted the registration and named the worker."""

    worker_id: str
    server_version: str = ""
    region: str = ""
    node_id: str = ""
    agent_protocol: int = 0


@attrs.frozen(kw_only=True)
class AvailabilityRequest:
    """The server offers a job; answer with an :class:`AvailabilityResponse` within 10 s."""

    job: Job
    resuming: bool = False


@attrs.frozen(kw_only=True)
class JobAssignment:
    """The job is this worker's: join its room with ``token`` at ``url`` ("": the server's own)."""

    job: Job
    token: str = attrs.field(repr=False)  # the agent's room token: never in a log
    url: str = ""


@attrs.frozen(kw_only=True)
class JobTermination:
    """The server ends a job (its room closed, its dispatch was deleted)."""

    job_id: str


@attrs.frozen(kw_only=True)
class ServerPong:
    """The answer to a :class:`WorkerPing`."""

    last_timestamp: int
    timestamp: int


@attrs.frozen(kw_only=True)
class GoAway:
    """The server asks the worker to leave (and connect again)."""

    reason: str = ""


ServerMessage = (
    Registered | AvailabilityRequest | JobAssignment | JobTermination | ServerPong | GoAway
)


def encode(message: WorkerMessage) -> bytes:
    """``message`` as the bytes of one binary WebSocket frame (a ``WorkerMessage``)."""
    out = _pb.WorkerMessage()
    match message:
        case Register():
            perms = message.permissions
            out.register.CopyFrom(
                _pb.RegisterWorkerRequest(
                    type=message.type.value,
                    agent_name=message.agent_name,
                    version=message.version,
                    namespace=message.namespace,
                    allowed_permissions=_models.ParticipantPermission(
                        can_publish=perms.can_publish,
                        can_subscribe=perms.can_subscribe,
                        can_publish_data=perms.can_publish_data,
                        can_update_metadata=perms.can_update_metadata,
                        can_publish_sources=[name.upper() for name in perms.can_publish_sources],
                        hidden=perms.hidden,
                        agent=True,
                    ),
                )
            )
        case AvailabilityResponse():
            out.availability.CopyFrom(
                _pb.AvailabilityResponse(
                    job_id=message.job_id,
                    available=message.available,
                    participant_identity=message.participant_identity,
                    participant_name=message.participant_name,
                    participant_metadata=message.participant_metadata,
                    participant_attributes=dict(message.participant_attributes),
                )
            )
        case UpdateJobStatus():
            out.update_job.CopyFrom(
                _pb.UpdateJobStatus(
                    job_id=message.job_id,
                    status=_JOB_STATUS[message.status],
                    error=message.error,
                )
            )
        case UpdateWorkerStatus():
            out.update_worker.CopyFrom(
                _pb.UpdateWorkerStatus(
                    status=_WORKER_STATUS[message.status],
                    load=message.load,
                    job_count=message.job_count,
                    draining=message.draining,
                )
            )
        case WorkerPing():
            out.ping.CopyFrom(_pb.WorkerPing(timestamp=message.timestamp))
        case _:
            raise TypeError(f"not a worker message: {message!r}")
    data: bytes = out.SerializeToString()
    return data


def decode(data: bytes) -> ServerMessage:
    """The server message in one binary frame; :class:`ProtocolError` for anything else."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(f"expected a binary frame, got {type(data).__name__}")
    msg = _pb.ServerMessage()
    try:
        msg.ParseFromString(bytes(data))
        return _from_proto(msg)
    except ProtocolError:
        raise
    except Exception as exc:  # protobuf's DecodeError, or a value it let through that we reject
        raise ProtocolError(f"undecodable server message ({len(data)} bytes): {exc}") from exc


def _from_proto(msg: Any) -> ServerMessage:
    which = msg.WhichOneof("message")
    if which == "register":
        reg = msg.register
        if not reg.worker_id:
            raise ProtocolError("registration answer without a worker id")
        info = reg.server_info
        return Registered(
            worker_id=reg.worker_id,
            server_version=info.version,
            region=info.region,
            node_id=info.node_id,
            agent_protocol=info.agent_protocol,
        )
    if which == "availability":
        if not msg.availability.HasField("job"):
            raise ProtocolError("availability request without a job")
        return AvailabilityRequest(
            job=_job(msg.availability.job), resuming=msg.availability.resuming
        )
    if which == "assignment":
        assignment = msg.assignment
        if not assignment.HasField("job"):
            raise ProtocolError("job assignment without a job")
        if not assignment.token:
            raise ProtocolError(f"job assignment {assignment.job.id!r} without a token")
        return JobAssignment(job=_job(assignment.job), token=assignment.token, url=assignment.url)
    if which == "termination":
        if not msg.termination.job_id:
            raise ProtocolError("job termination without a job id")
        return JobTermination(job_id=msg.termination.job_id)
    if which == "pong":
        return ServerPong(last_timestamp=msg.pong.last_timestamp, timestamp=msg.pong.timestamp)
    if which == "go_away":
        return GoAway(reason=msg.go_away.reason)
    if which is None:
        raise ProtocolError("empty server message (or one of a newer protocol)")
    raise ProtocolError(f"unknown server message {which!r}")


def _job(job: Any) -> Job:
    if not job.id:
        raise ProtocolError("job without an id")
    try:
        job_type = JobType(job.type)
    except ValueError:
        raise ProtocolError(f"job {job.id!r} of unknown type {job.type}") from None
    return Job(
        id=job.id,
        room_name=job.room.name,
        room_sid=job.room.sid,
        dispatch_id=job.dispatch_id,
        agent_name=job.agent_name,
        namespace=job.namespace,
        metadata=job.metadata,
        type=job_type,
        participant_identity=job.participant.identity if job.HasField("participant") else "",
        attributes=dict(job.attributes),
    )


def agent_token(
    api_key: str, api_secret: str, *, ttl: datetime.timedelta = datetime.timedelta(minutes=10)
) -> str:
    """An HS256 JWT with the agent grant, for the ``Authorization: Bearer`` of ``/agent``.

    The server checks it once, at the handshake; a short ``ttl`` is enough (a reconnection makes
    a new one).
    """
    if not api_key or not api_secret:
        raise ValueError(
            "the LiveKit API key and secret are required (LIVEKIT_API_KEY, LIVEKIT_API_SECRET)"
        )
    # Imported here: the livekit.api package pulls aiohttp in (half a second), for one token.
    from livekit.api.access_token import AccessToken, VideoGrants

    token: str = (
        AccessToken(api_key, api_secret).with_grants(VideoGrants(agent=True)).with_ttl(ttl).to_jwt()
    )
    return token


def agent_url(ws_url: str) -> str:
    """The worker endpoint of a LiveKit server URL: ``http(s)`` becomes ``ws(s)``, path ``/agent``.

    >>> agent_url("https://example.livekit.cloud")
    'wss://example.livekit.cloud/agent'
    """
    parts = urlsplit(ws_url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"not a LiveKit server URL (ws://, wss://, http://, https://): {ws_url!r}")
    path = parts.path.rstrip("/") + "/agent"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))
