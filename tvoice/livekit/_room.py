"""`LiveKitRoom`: a LiveKit room as a :class:`tvoice.io.SessionRoom`.

The ``rtc.Room`` lives on the asyncio side of the bridge; its events only wake the trio side
(a fresh ``trio.Event`` per change), which reads the room's state itself. A session started in
the room (``session.start(agent, room=room)``) gets:

- the linked participant's microphone (``options.participant_identity``, or the first
  standard/SIP participant), followed across unpublish/republish, after its pre-connect audio;
- the agent's audio track and transcriptions synchronised with it (``_room_audio``,
  ``_room_text``), and the user's transcripts;
- text input from the linked participant on ``lk.chat`` (interrupt, then reply);
- what participants send on data streams read and decoded with limits (``_incoming``);
- the end of the session when the linked participant leaves (``close_on_disconnect``);
- the room joined again through the deployment's other servers (``fallback_urls``) when the
  connection through ``url`` is lost while the session runs (``_rejoin``): the session goes on,
  the agent's track is published again and the participant's microphone followed again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs
import livekit.rtc as rtc
import trio
from livekit.rtc._proto.track_pb2 import AudioTrackFeature
from livekit.rtc.room import EventTypes

from ..audio import AudioFrame
from ..io import Participant, RoomIO, RoomSession, SessionRoom
from ._bridge import AsyncioBridge, CrossingChannel, current_bridge
from ._incoming import MAX_PRE_CONNECT_BYTES, decode_pre_connect, read_bytes, read_text
from ._rejoin import RejoinPolicy, is_lost_connection, rejoin_schedule
from ._room_audio import CHUNK_DURATION, RoomAudioInput, RoomAudioOutput, read_track
from ._room_text import TranscriptionSync, UserTranscripts
from ._tokens import token_claims

__all__ = ["LiveKitRoom", "RoomOptions"]

logger = logging.getLogger("tvoice.livekit")

TOPIC_CHAT = "lk.chat"
TOPIC_PRE_CONNECT_AUDIO = "lk.agent.pre-connect-audio-buffer"
ATTRIBUTE_PUBLISH_ON_BEHALF = "lk.publish_on_behalf"
ATTRIBUTE_AGENT_STATE = "lk.agent.state"
MAX_STASHED_PRE_CONNECT = 8
CHAT_READ_TIMEOUT = 10.0
_SUITABLE_KINDS = (
    rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
    rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
)
_CLOSE_REASONS = (
    rtc.DisconnectReason.CLIENT_INITIATED,
    rtc.DisconnectReason.ROOM_DELETED,
    rtc.DisconnectReason.USER_REJECTED,
)
_KIND_NAMES = {
    rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD: "standard",
    rtc.ParticipantKind.PARTICIPANT_KIND_INGRESS: "ingress",
    rtc.ParticipantKind.PARTICIPANT_KIND_EGRESS: "egress",
    rtc.ParticipantKind.PARTICIPANT_KIND_SIP: "sip",
    rtc.ParticipantKind.PARTICIPANT_KIND_AGENT: "agent",
}
_ROOM_EVENTS: tuple[EventTypes, ...] = (
    "participant_connected",
    "participant_attributes_changed",
    "track_published",
    "track_unpublished",
    "track_subscribed",
    "track_unsubscribed",
    "connection_state_changed",
)


@attrs.frozen(kw_only=True)
class RoomOptions:
    """How a :class:`LiveKitRoom` serves a session.

    ``input_sample_rate``/``input_num_channels``: the session's audio input (the SDK
    resamples the microphone). ``output_sample_rate``/``output_num_channels``: the published
    track. ``participant_identity``: the participant to link (None: the first standard or SIP
    participant). ``playout_lead``: how far ahead of playout audio is handed to the track (an
    interruption stops the published audio within it). ``input_buffer``: seconds of
    microphone audio waiting for trio before the oldest is dropped.
    """

    input_sample_rate: int = 24000
    input_num_channels: int = 1
    output_sample_rate: int = 24000
    output_num_channels: int = 1
    participant_identity: str | None = None
    close_on_disconnect: bool = True
    audio_output: bool = True
    text_input: bool = True
    transcription: bool = True
    pre_connect_audio: bool = True
    pre_connect_audio_timeout: float = 3.0
    playout_lead: float = 0.1
    input_buffer: float = 1.0
    max_text_input_chars: int = 10_000
    connect_timeout: float = 15.0
    disconnect_timeout: float = 5.0
    rejoin: RejoinPolicy = attrs.field(factory=RejoinPolicy)
    """How the room is joined again through ``fallback_urls`` once its connection is lost."""


class LiveKitRoom(SessionRoom):
    """A LiveKit room the agent joins with ``url`` and ``token`` (see the module's docstring).

    ``fallback_urls``: other servers of the same LiveKit deployment (nodes sharing its Redis),
    through which the room is joined again if the connection through ``url`` is lost while a
    session runs in it (``options.rejoin`` bounds how long that is tried).

    Constructing it does no I/O; :meth:`connect` needs :func:`current_bridge` (trio running as
    the guest of the livekit SDK's asyncio loop, :func:`run_with_asyncio_host`).
    """

    def __init__(
        self,
        *,
        url: str,
        token: str,
        options: RoomOptions = RoomOptions(),
        fallback_urls: Sequence[str] = (),
    ) -> None:
        claims = token_claims(token)
        self.url = url
        self.urls: tuple[str, ...] = tuple(dict.fromkeys((url, *fallback_urls)))
        """Every URL the room may be joined through, ``url`` first."""
        self.options = options
        self._token = token
        video = claims.get("video")
        self.name: str = str(video.get("room", "")) if isinstance(video, dict) else ""
        self.local_identity: str = str(claims.get("sub", ""))
        self.linked_identity: str | None = None
        self._room: rtc.Room | None = None
        self._bridge: AsyncioBridge | None = None
        self._changed = trio.Event()
        self._left: dict[str, Any] = {}  # identity -> rtc.DisconnectReason
        # sender identity -> (the track it says the audio is for, its stream): a participant's
        # pre-connect audio is only ever used for that participant's own microphone.
        self._pre_connect: dict[str, tuple[str, rtc.ByteStreamReader]] = {}
        self._chat: CrossingChannel[tuple[rtc.TextStreamReader, str]] | None = None
        self._leaving = False
        self._wanted: str | None = None
        self.closed_reason: str | None = None
        """Why the room is gone for the agent (None while it is not)."""
        # While a session runs here, a lost connection is the rejoin task's to handle.
        self._rejoining_allowed = False
        self._lost: str | None = None  # why the current connection is lost, rejoin pending
        self._sid: str | None = None  # the room's session id, to know it again after a rejoin
        self._reconnecting = False  # the SDK is reconnecting on its own
        self._given_up: rtc.Room | None = None  # the lost connection, being left for a new one
        self.rejoins = 0
        """How many times the room was joined again after a lost connection."""
        self.audio_input: RoomAudioInput | None = None
        self.audio_output: RoomAudioOutput | None = None
        self.text_output: TranscriptionSync | None = None
        self._user_transcripts: UserTranscripts | None = None

    @property
    def rtc_room(self) -> rtc.Room:
        """The connected ``rtc.Room`` (asyncio side: await its methods through the bridge).
        A rejoined room is a new ``rtc.Room``: read this again rather than keep it."""
        if self._room is None:
            raise RuntimeError("the room is not connected: await room.connect() first")
        return self._room

    # -- joining and leaving ------------------------------------------------------------------

    async def connect(self) -> None:
        """Join the room (once; later calls return at once). Raises ConnectionError."""
        if self._room is not None:
            return
        self._bridge = current_bridge()
        room = await self._join(self.url, self.options.connect_timeout)
        self._room = room
        self._sid = await self._room_sid(room)
        self.name = room.name
        self.local_identity = room.local_participant.identity
        logger.info("joined room %s as %s", self.name, self.local_identity)

    async def _join(self, url: str, within: float) -> rtc.Room:
        """A new ``rtc.Room`` connected through ``url`` within ``within`` s (ConnectionError)."""
        bridge = current_bridge()
        room = rtc.Room(loop=bridge.loop)
        for event in _ROOM_EVENTS:
            room.on(event, self._on_room_event)
        room.on("participant_disconnected", self._on_participant_left)
        room.on("disconnected", functools.partial(self._on_disconnected, room))
        room.on("reconnecting", functools.partial(self._on_reconnecting, room, True))
        room.on("reconnected", functools.partial(self._on_reconnecting, room, False))
        # Before connecting: clients send pre-connect audio as soon as the agent joins.
        if self.options.pre_connect_audio:
            room.register_byte_stream_handler(TOPIC_PRE_CONNECT_AUDIO, self._on_pre_connect)
        if self.options.text_input:
            room.register_text_stream_handler(TOPIC_CHAT, self._on_chat)
        try:
            with trio.fail_after(within):
                await bridge.call(
                    room.connect, url, self._token, rtc.RoomOptions(auto_subscribe=True)
                )
        except trio.TooSlowError:
            await self._abandon(room)
            raise ConnectionError(
                f"could not join room {self.name!r} at {url} within {within:g} s"
            ) from None
        except rtc.ConnectError as e:
            raise ConnectionError(
                f"could not join room {self.name!r} at {url}: {e.message}"
            ) from None
        return room

    async def _room_sid(self, room: rtc.Room) -> str | None:
        """The room's session id (a room made again under the same name has a new one), or
        None if the server does not say within ``options.connect_timeout``."""

        async def sid() -> str:
            return await room.sid

        with trio.move_on_after(self.options.connect_timeout):
            try:
                return await current_bridge().call(sid)
            except RuntimeError:  # disconnected meanwhile
                return None
        return None

    async def _abandon(self, room: rtc.Room) -> None:
        """Disconnect ``room`` (no longer the current one), bounded, whatever state it is in."""
        assert self._bridge is not None
        with trio.move_on_after(self.options.disconnect_timeout) as scope:
            scope.shield = True
            try:
                await self._bridge.call(room.disconnect)
            except Exception as e:  # it is gone either way
                logger.debug("leaving a lost connection to room %s: %s", self.name, e)
        if scope.cancelled_caught:
            logger.warning("leaving a lost connection to room %s timed out", self.name)

    async def disconnect(self) -> None:
        """Leave the room (bounded by ``options.disconnect_timeout``, shielded)."""
        room, self._room = self._room, None
        if room is None or self._bridge is None:
            return
        self._leaving = True
        for _, reader in self._pre_connect.values():
            reader.close()
        self._pre_connect.clear()
        with trio.move_on_after(self.options.disconnect_timeout) as scope:
            scope.shield = True
            await self._bridge.call(room.disconnect)
        if scope.cancelled_caught:
            logger.warning(
                "leaving room %s took over %s s", self.name, self.options.disconnect_timeout
            )
        self._notify()

    # -- asyncio-side callbacks: they only hand over to trio ----------------------------------

    def _on_room_event(self, *_: object) -> None:
        if self._bridge is not None:
            self._bridge.run_sync_in_trio(self._notify)

    async def wait_closed(self) -> None:
        """Return once the room disconnected the agent for good (room deleted or closed,
        removed by the server, the connection lost and not regained through any of
        :attr:`urls`: :attr:`closed_reason` says which); :meth:`disconnect` itself does not
        count."""
        while not (self.closed_reason is not None and not self._leaving):
            changed = self._changed
            await changed.wait()

    def _on_participant_left(self, participant: rtc.RemoteParticipant) -> None:
        self._left[participant.identity] = participant.disconnect_reason
        self._on_room_event()

    def _on_disconnected(self, room: rtc.Room, reason: Any = None) -> None:
        if self._bridge is not None:
            self._bridge.run_sync_in_trio(self._disconnected, room, reason)

    def _on_reconnecting(self, room: rtc.Room, reconnecting: bool, *_: object) -> None:
        if self._bridge is not None:
            self._bridge.run_sync_in_trio(self._set_reconnecting, room, reconnecting)

    # -- trio side: the connection's state ----------------------------------------------------

    def _disconnected(self, room: rtc.Room, reason: Any) -> None:
        if room is not self._room or room is self._given_up or self._leaving:
            return  # a connection given up for a new one, or the agent leaving
        name = _reason_name(reason)
        if (
            self._rejoining_allowed
            and len(self.urls) > 1
            and reason is not None
            and is_lost_connection(reason)
        ):
            logger.warning("connection to room %s through %s lost (%s)", self.name, self.url, name)
            self._lost = f"connection lost ({name})"
        else:
            self.closed_reason = f"disconnected from the room ({name})"
        self._notify()

    def _set_reconnecting(self, room: rtc.Room, reconnecting: bool) -> None:
        if room is self._room:
            self._reconnecting = reconnecting
            self._notify()

    async def _keep_joined(self) -> None:
        """While a session runs: when the connection is lost, join the room again through
        another of :attr:`urls` (the rejoin policy's order, backoff and time limit); when
        none works in time, the room is closed for the agent (:attr:`closed_reason`)."""
        policy = self.options.rejoin
        while True:
            changed = self._changed
            if self.closed_reason is not None:
                return
            if self._lost is None and self._reconnecting and len(self.urls) > 1:
                # The SDK retries the same server for a long while; one that refuses
                # connections is dead, and the room is reachable through another now.
                reachable = False
                with trio.move_on_after(policy.probe_timeout):
                    reachable = await _reachable(self.url)
                if not reachable:
                    logger.warning(
                        "room %s: the SDK is reconnecting to %s, which is unreachable",
                        self.name,
                        self.url,
                    )
                    self._lost = "server unreachable"
                else:
                    with trio.move_on_after(policy.probe_interval):
                        await changed.wait()
                continue
            if self._lost is not None:
                await self._rejoin(self._lost)
                continue
            await changed.wait()

    async def _rejoin(self, why: str) -> None:
        old, policy = self.rtc_room, self.options.rejoin
        lost_url, started = self.url, trio.current_time()
        # Leaving it says "disconnected" (client initiated): that is not the room closing.
        self._given_up = old
        await self._abandon(old)
        new: rtc.Room | None = None
        failures: list[str] = []
        with trio.move_on_after(policy.timeout):
            for delay, url in rejoin_schedule(lost_url, self.urls, policy):
                await trio.sleep(delay)
                try:
                    new = await self._join(url, policy.attempt_timeout)
                except ConnectionError as e:
                    logger.info("room %s: rejoin attempt failed: %s", self.name, e)
                    failures.append(str(e))
                    continue
                self.url = url
                break
        sid = await self._room_sid(new) if new is not None else None
        if new is not None and None not in (sid, self._sid) and sid != self._sid:
            # The room lived on the lost node and ended with it: joining made a new, empty
            # room of that name (whose own dispatch the server sends to some worker).
            await self._abandon(new)
            self.closed_reason = (
                f"{why} through {lost_url}; room {self.name!r} ended with it (joining through "
                f"{self.url} found a new room, {sid}, not {self._sid})"
            )
            logger.error("%s", self.closed_reason)
            self._notify()
            return
        if new is None:
            last = f"; last: {failures[-1]}" if failures else ""
            self.closed_reason = (
                f"{why} through {lost_url}; could not join room {self.name!r} again through"
                f" any of {', '.join(self.urls)} within {policy.timeout:g} s{last}"
            )
            logger.error("%s", self.closed_reason)
            self._notify()
            return
        self._room, self._lost, self._reconnecting = new, None, False
        self.rejoins += 1
        logger.warning(
            "room %s joined again through %s, %.1f s after the %s through %s",
            self.name,
            self.url,
            trio.current_time() - started,
            why,
            lost_url,
        )
        for output in (self.audio_output, self.text_output):
            if output is not None:
                output.room = new
        if self._user_transcripts is not None:
            self._user_transcripts.room = new
        self._notify()
        if self.audio_output is not None:
            await self.audio_output.republish()

    def _on_pre_connect(self, reader: rtc.ByteStreamReader, participant_identity: str) -> None:
        track_id = (reader.info.attributes or {}).get("trackId")
        if not track_id:
            logger.warning(
                "pre-connect audio from %s has no trackId: ignored", participant_identity
            )
            reader.close()
            return
        owner = self._track_owner(track_id)
        if owner is not None and owner != participant_identity:
            logger.warning(
                "pre-connect audio from %s for %s's track %s: dropped",
                participant_identity,
                owner,
                track_id,
            )
            reader.close()
            return
        previous = self._pre_connect.pop(participant_identity, None)
        if previous is not None:  # one stash per participant: the latest one
            previous[1].close()
        if len(self._pre_connect) >= MAX_STASHED_PRE_CONNECT:
            oldest = next(iter(self._pre_connect))
            self._pre_connect.pop(oldest)[1].close()
        self._pre_connect[participant_identity] = (track_id, reader)
        self._on_room_event()

    def _track_owner(self, track_sid: str) -> str | None:
        """The remote participant who published ``track_sid`` (None: not known yet)."""
        room = self._room
        if room is None:
            return None
        for participant in room.remote_participants.values():
            if track_sid in participant.track_publications:
                return participant.identity
        return None

    def _has_pre_connect(self, owner: str, track_sid: str) -> bool:
        stashed = self._pre_connect.get(owner)
        return stashed is not None and stashed[0] == track_sid

    def _on_chat(self, reader: rtc.TextStreamReader, participant_identity: str) -> None:
        if self._chat is None:
            logger.info(
                "text input from %s before a session started: ignored", participant_identity
            )
            reader.close()
            return
        self._chat.put((reader, participant_identity))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # -- participants -------------------------------------------------------------------------

    def _find(self, identity: str | None) -> rtc.RemoteParticipant | None:
        room = self.rtc_room
        if identity is not None:
            return room.remote_participants.get(identity)
        for participant in room.remote_participants.values():
            on_behalf = participant.attributes.get(ATTRIBUTE_PUBLISH_ON_BEHALF)
            if participant.kind in _SUITABLE_KINDS and on_behalf != self.local_identity:
                return participant
        return None

    async def wait_for_participant(self, *, identity: str | None = None) -> Participant:
        """``identity``, or the first standard/SIP participant (not one publishing on the
        agent's behalf), waiting for it to join. A session started in this room afterwards
        links the participant waited for by ``identity`` (unless ``options`` name one)."""
        if identity is not None:
            self._wanted = identity
        while True:
            changed = self._changed
            if self.closed_reason is not None:
                raise ConnectionError(f"room {self.name!r}: {self.closed_reason}")
            found = self._find(identity)
            if found is not None:
                return Participant(
                    identity=found.identity,
                    name=found.name,
                    kind=_KIND_NAMES.get(found.kind, "standard"),
                    metadata=found.metadata,
                    attributes=dict(found.attributes),
                )
            await changed.wait()

    # -- the session's I/O --------------------------------------------------------------------

    async def run_session_io(
        self,
        session: RoomSession,
        *,
        task_status: trio.TaskStatus[RoomIO] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Provide ``session``'s I/O in this room until cancelled (the SessionRoom contract)."""
        room, bridge, options = self.rtc_room, current_bridge(), self.options
        capacity = max(1, round(options.input_buffer / CHUNK_DURATION))
        frames: CrossingChannel[AudioFrame] = bridge.channel(capacity, label="room audio input")
        audio_input = RoomAudioInput(frames)
        audio_output = (
            RoomAudioOutput(
                bridge,
                room,
                sample_rate=options.output_sample_rate,
                num_channels=options.output_num_channels,
                lead=options.playout_lead,
            )
            if options.audio_output
            else None
        )
        text_output = (
            TranscriptionSync(bridge, room, audio_output, audio_expected=lambda: _speaks(session))
            if options.transcription
            else None
        )
        user = UserTranscripts(
            bridge,
            room,
            identity=lambda: self.linked_identity,
            track_id=lambda: self._microphone_sid(self.linked_identity),
        )
        self.audio_output, self.text_output, self.audio_input = (
            audio_output,
            text_output,
            audio_input,
        )
        self._user_transcripts = user if text_output is not None else None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keep_joined)
                self._rejoining_allowed = True
                if audio_output is not None:
                    await nursery.start(audio_output.run)
                if text_output is not None:
                    await nursery.start(text_output.run)
                    await nursery.start(user.run)
                    session.on("user_input_transcribed", user.on_transcribed)
                if options.text_input:
                    self._chat = bridge.channel(8, label="room text input", on_drop=_close_reader)
                    nursery.start_soon(self._read_chat, session, self._chat)
                nursery.start_soon(self._agent_state, session)
                nursery.start_soon(self._follow_participant, session, frames, audio_input)
                task_status.started(
                    RoomIO(
                        audio_input=audio_input, audio_output=audio_output, text_output=text_output
                    )
                )
        finally:
            self._rejoining_allowed = False
            if self._lost is not None and self.closed_reason is None:
                self.closed_reason = self._lost  # nobody left to join again
                self._notify()
            if text_output is not None:
                session.off("user_input_transcribed", user.on_transcribed)
            chat, self._chat = self._chat, None
            if chat is not None:
                _drain_readers(chat)

    def _microphone(self, participant: rtc.RemoteParticipant) -> rtc.RemoteTrackPublication | None:
        for publication in participant.track_publications.values():
            if publication.source == rtc.TrackSource.SOURCE_MICROPHONE and isinstance(
                publication.track, rtc.RemoteAudioTrack
            ):
                return publication
        return None

    def _microphone_sid(self, identity: str | None) -> str | None:
        participant = self._find(identity) if identity is not None and self._room else None
        publication = self._microphone(participant) if participant is not None else None
        return publication.sid if publication is not None else None

    async def _follow_participant(
        self, session: RoomSession, frames: CrossingChannel[AudioFrame], audio_input: RoomAudioInput
    ) -> None:
        """Link the participant, read its microphone (following a republished one), end the
        session when it leaves."""
        wanted = self.options.participant_identity or self._wanted
        async with trio.open_nursery() as nursery:
            while True:
                linked = await self.wait_for_participant(identity=wanted)
                self.linked_identity = linked.identity
                logger.info("linked participant %s", linked.identity)
                stream_scope: trio.CancelScope | None = None
                # The track read, in the rtc.Room it was read from: a rejoined room is a new
                # rtc.Room, where the same track is subscribed (and read) again.
                current: tuple[rtc.Room | None, str] = (None, "")
                while True:
                    changed = self._changed
                    participant = self._find(linked.identity)
                    if participant is None:
                        break
                    publication = self._microphone(participant)
                    key = (self._room, publication.sid if publication is not None else "")
                    if key != current:
                        if stream_scope is not None:
                            stream_scope.cancel()
                            stream_scope = None
                        current = key
                        if publication is not None:
                            stream_scope = await nursery.start(
                                self._read_microphone,
                                linked.identity,
                                publication,
                                frames,
                                audio_input,
                            )
                    await changed.wait()
                if stream_scope is not None:
                    stream_scope.cancel()
                reason = self._left.pop(linked.identity, None)
                logger.info("linked participant %s left (reason %s)", linked.identity, reason)
                self.linked_identity = None
                if self.options.close_on_disconnect and reason in _CLOSE_REASONS:
                    session.shutdown("participant_disconnected")
                    return

    async def _read_microphone(
        self,
        owner: str,
        publication: rtc.RemoteTrackPublication,
        frames: CrossingChannel[AudioFrame],
        audio_input: RoomAudioInput,
        *,
        task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        bridge, options = current_bridge(), self.options
        track = publication.track
        assert track is not None
        with trio.CancelScope() as scope:
            task_status.started(scope)
            # Created now, so that live audio queues up (bounded) while pre-connect audio comes.
            stream = rtc.AudioStream(
                track,
                loop=bridge.loop,
                capacity=500,
                sample_rate=options.input_sample_rate,
                num_channels=options.input_num_channels,
                frame_size_ms=round(CHUNK_DURATION * 1000),
            )
            reading = False
            try:
                if options.pre_connect_audio and (
                    AudioTrackFeature.TF_PRECONNECT_BUFFER in publication.audio_features
                    or self._has_pre_connect(owner, publication.sid)
                ):
                    audio_input.prepend(await self._take_pre_connect(owner, publication.sid))
                reading = True
                await bridge.call(read_track, stream, frames, f"track {publication.sid}")
            finally:
                if not reading:
                    with trio.move_on_after(1.0) as cleanup:
                        cleanup.shield = True
                        await bridge.call(stream.aclose)

    async def _take_pre_connect(self, owner: str, track_sid: str) -> list[AudioFrame]:
        bridge, options = current_bridge(), self.options
        with trio.move_on_after(options.pre_connect_audio_timeout):
            while not self._has_pre_connect(owner, track_sid):
                await self._changed.wait()
            _, reader = self._pre_connect.pop(owner)
            try:
                data = await bridge.call(read_bytes, reader, MAX_PRE_CONNECT_BYTES)
                # In a thread: decoding takes a while, and this thread runs the SDK's loop
                # (every call's audio and pings) as well as trio.
                decode = functools.partial(
                    decode_pre_connect,
                    sample_rate=options.input_sample_rate,
                    num_channels=options.input_num_channels,
                )
                frames = await trio.to_thread.run_sync(
                    decode, reader.info, data, abandon_on_cancel=True
                )
            except (ValueError, rtc.StreamError) as e:
                logger.error("pre-connect audio for track %s rejected: %s", track_sid, e)
                return []
            logger.debug(
                "pre-connect audio for track %s: %.2f s",
                track_sid,
                sum(f.duration for f in frames),
            )
            return frames
        logger.warning("no pre-connect audio for track %s within the timeout", track_sid)
        return []

    # -- text input and agent state -----------------------------------------------------------

    async def _read_chat(
        self, session: RoomSession, chat: CrossingChannel[tuple[rtc.TextStreamReader, str]]
    ) -> None:
        bridge, limit = current_bridge(), self.options.max_text_input_chars
        async for reader, identity in chat.receiver:
            if identity != self.linked_identity:
                logger.info("text input from %s (not the linked participant): ignored", identity)
                reader.close()
                continue
            try:
                with trio.fail_after(CHAT_READ_TIMEOUT):
                    text = await bridge.call(read_text, reader, limit)
            except (ValueError, rtc.StreamError, trio.TooSlowError) as e:
                logger.error("text input from %s rejected: %s", identity, e or "timed out")
                continue
            text = text.strip()
            if not text:
                continue
            try:
                session.interrupt()
                session.generate_reply(user_input=text)
            except Exception:
                logger.exception("text input from %s could not start a reply", identity)

    async def _agent_state(self, session: RoomSession) -> None:
        """Mirror the agent's state in its ``lk.agent.state`` attribute (LiveKit clients show
        it); only the latest state is sent."""
        changed = trio.Event()

        def on_change(_: object) -> None:
            changed.set()

        session.on("agent_state_changed", on_change)
        sent: tuple[rtc.Room | None, str] = (None, "")
        try:
            while True:
                room_changed = self._changed
                room, state = self._room, session.agent_state
                # Sent again to a rejoined room: the attribute belongs to the participant.
                if state and room is not None and (room, state) != sent:
                    try:
                        with trio.fail_after(5):
                            await current_bridge().call(
                                room.local_participant.set_attributes,
                                {ATTRIBUTE_AGENT_STATE: state},
                            )
                        sent = (room, state)
                    except Exception as e:  # the state is cosmetic: never end the session for it
                        logger.debug("agent state not published: %s", e)
                async with trio.open_nursery() as waiting:
                    waiting.start_soon(_wait_then_cancel, changed, waiting.cancel_scope)
                    waiting.start_soon(_wait_then_cancel, room_changed, waiting.cancel_scope)
                changed = trio.Event()
        finally:
            session.off("agent_state_changed", on_change)


async def _wait_then_cancel(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _reason_name(reason: Any) -> str:
    try:
        return str(rtc.DisconnectReason.Name(reason))
    except (ValueError, TypeError):
        return str(reason)


async def _reachable(url: str) -> bool:
    """Whether something accepts TCP connections where ``url`` (ws:// or wss://) points."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme in ("wss", "https") else 80)
    try:
        stream = await trio.open_tcp_stream(parts.hostname or "localhost", port)
    except OSError:
        return False
    await stream.aclose()
    return True


def _speaks(session: RoomSession) -> bool:
    if session.tts is not None:
        return True
    try:
        return session.current_agent.tts is not None
    except RuntimeError:  # no agent yet
        return False


def _close_reader(item: tuple[rtc.TextStreamReader, str]) -> None:
    item[0].close()


def _drain_readers(chat: CrossingChannel[tuple[rtc.TextStreamReader, str]]) -> None:
    while True:
        try:
            reader, _ = chat.receiver.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return
        reader.close()
