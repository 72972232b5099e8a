"""Recognition's account of the STT's verdicts, whichever of the VAD and the STT closes an
utterance first (real VADs and STTs do both: the bench's scripted ones and network STTs)."""

import trio
import trio.testing

from tvoice.stt import SpeechData, SpeechEvent, SpeechEventType
from tvoice.vad import VADEvent, VADEventType
from tvoice.voice._clock import Clock
from tvoice.voice._recognition import AudioRecognition


class Hooks:
    def __init__(self):
        self.turns = []

    def on_end_of_turn(self, turn):
        self.turns.append((turn.transcript, trio.current_time()))

    def __getattr__(self, name):  # the other hooks: nothing to record
        return lambda *args, **kwargs: None


def keep_time(rec, nursery):
    """What the session does for its recognition: a clock that keeps its time."""
    nursery.start_soon(rec._clock.run)
    rec._clock.add(rec)


def vad(kind):
    return VADEvent(type=kind, timestamp=trio.current_time(), speaking=True)


def stt_says(rec, text):
    final = SpeechEvent(type=SpeechEventType.FINAL_TRANSCRIPT, alternatives=[SpeechData(text=text)])
    rec._on_stt_event(final)
    rec._on_stt_event(SpeechEvent(type=SpeechEventType.END_OF_SPEECH))


async def test_each_stt_verdict_covers_its_own_utterance(autojump_clock):
    hooks = Hooks()
    rec = AudioRecognition(
        hooks,
        vad=object(),
        turn_detection="stt",
        min_endpointing_delay=0.0,
        max_endpointing_delay=3.0,
        stt_enabled=True,
        clock=Clock(),
    )
    async with trio.open_nursery() as nursery:
        rec._nursery = nursery  # what run() sets; no audio is needed to order events by hand
        keep_time(rec, nursery)
        # 1: the STT closes the utterance before the VAD does.
        rec._on_vad_event(vad(VADEventType.START_OF_SPEECH))
        await trio.sleep(1)
        stt_says(rec, "Hello.")
        await trio.sleep(0.2)
        rec._on_vad_event(vad(VADEventType.END_OF_SPEECH))
        # 2: the VAD closes it first, then the STT gives its verdict.
        await trio.sleep(1)
        rec._on_vad_event(vad(VADEventType.START_OF_SPEECH))
        await trio.sleep(1)
        rec._on_vad_event(vad(VADEventType.END_OF_SPEECH))
        await trio.sleep(0.3)
        stt_says(rec, "Thanks.")
        # 3: an STT verdict with no utterance the VAD heard (noise it missed) owes nothing.
        await trio.sleep(1)
        stt_says(rec, "Bye.")
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert hooks.turns == [("Hello.", 1.0), ("Thanks.", 3.5), ("Bye.", 4.5)]


async def test_without_a_vad_the_stt_ends_the_speech_it_started(autojump_clock):
    hooks = Hooks()
    rec = AudioRecognition(
        hooks,
        vad=None,
        turn_detection="stt",
        min_endpointing_delay=0.0,
        max_endpointing_delay=3.0,
        stt_enabled=True,
        clock=Clock(),
    )
    async with trio.open_nursery() as nursery:
        rec._nursery = nursery  # what run() sets; no audio is needed to order events by hand
        keep_time(rec, nursery)
        for text in ("Hello.", "Thanks."):
            rec._on_stt_event(SpeechEvent(type=SpeechEventType.START_OF_SPEECH))
            await trio.sleep(1)
            stt_says(rec, text)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert hooks.turns == [("Hello.", 1.0), ("Thanks.", 2.0)]


async def test_stt_verdict_of_an_earlier_burst_does_not_close_a_later_one(autojump_clock):
    """Two bursts the VAD hears as one speech: the STT's verdict on the first one (given while
    the VAD still hears speech) does not cover the second, which the STT opened afterwards.
    The VAD's end and the STT's last verdict come at one instant: either order is one turn."""
    for vad_first in (True, False):
        hooks = Hooks()
        rec = AudioRecognition(
            hooks,
            vad=object(),
            turn_detection="vad",
            min_endpointing_delay=0.5,
            max_endpointing_delay=3.0,
            stt_enabled=True,
            clock=Clock(),
        )
        async with trio.open_nursery() as nursery:
            rec._nursery = nursery  # what run() sets; no audio is needed to order events by hand
            keep_time(rec, nursery)
            t0 = trio.current_time()
            rec._on_vad_event(vad(VADEventType.START_OF_SPEECH))
            rec._on_stt_event(SpeechEvent(type=SpeechEventType.START_OF_SPEECH))
            await trio.sleep(1)
            stt_says(rec, "one")  # the first burst's verdict; the VAD still hears speech
            rec._on_stt_event(SpeechEvent(type=SpeechEventType.START_OF_SPEECH))
            await trio.sleep(1)
            end = VADEvent(
                type=VADEventType.END_OF_SPEECH,
                timestamp=trio.current_time(),
                silence_duration=0.5,
            )
            if vad_first:
                rec._on_vad_event(end)
                stt_says(rec, "two")
            else:
                stt_says(rec, "two")
                rec._on_vad_event(end)
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        assert hooks.turns == [("one two", t0 + 2.0)], vad_first


def in_every_order(play, orders=40):
    """``play``'s result in ``orders`` scheduling orders (trio picks the order in which tasks
    ready at one instant run; seeding its scheduler fixes one)."""
    results = set()
    for seed in range(orders):
        trio._core._run._r.seed(seed)
        results.add(repr(trio.run(play, clock=trio.testing.MockClock(autojump_threshold=0))))
    return results


def recognition(hooks, nursery):
    rec = AudioRecognition(
        hooks,
        vad=object(),
        turn_detection="vad",
        min_endpointing_delay=0.8,
        max_endpointing_delay=3.0,
        stt_enabled=True,
        clock=Clock(),
    )
    rec._nursery = nursery  # what run() sets; no audio is needed to order events by hand
    keep_time(rec, nursery)
    return rec


def vad_end(silence=0.5):
    return VADEvent(
        type=VADEventType.END_OF_SPEECH, timestamp=trio.current_time(), silence_duration=silence
    )


def test_speech_that_starts_as_the_endpointing_delay_ends_begins_the_next_turn():
    """The endpointing timer and a new start of speech at one instant: the turn is committed
    and the speech is the next turn's, whichever of the two tasks trio runs first."""

    async def play():
        hooks = Hooks()
        async with trio.open_nursery() as nursery:
            rec = recognition(hooks, nursery)
            rec._on_vad_event(vad(VADEventType.START_OF_SPEECH))
            await trio.sleep(1.0)
            stt_says(rec, "one")
            await trio.sleep(0.5)
            rec._on_vad_event(vad_end())  # speech ended at 1.0: the timer commits at 1.8
            await trio.sleep_until(1.8)
            rec._on_vad_event(vad(VADEventType.START_OF_SPEECH))
            await trio.sleep(1.0)
            stt_says(rec, "two")
            rec._on_vad_event(vad_end(silence=0.0))
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
        return [(text, round(at, 9)) for text, at in hooks.turns]

    assert in_every_order(play) == {repr([("one", 1.8), ("two", 3.6)])}


def test_speech_that_starts_as_the_stt_gives_its_verdict_begins_the_next_turn():
    """The STT's verdict on a speech the VAD closed, at the instant a new speech starts: the
    turn is committed (its endpointing delay is over) and the new speech is the next turn's."""

    async def play():
        hooks = Hooks()
        async with trio.open_nursery() as nursery:
            rec = recognition(hooks, nursery)
            rec._on_vad_event(vad(VADEventType.START_OF_SPEECH))
            await trio.sleep(1.0)
            rec._on_vad_event(vad_end(silence=0.0))  # the STT owes its verdict
            await trio.sleep(1.0)

            async def stt() -> None:
                stt_says(rec, "one")

            async def speech() -> None:
                rec._on_vad_event(vad(VADEventType.START_OF_SPEECH))

            nursery.start_soon(stt)  # the two, at one instant, in trio's order
            nursery.start_soon(speech)
            await trio.sleep(1.0)
            stt_says(rec, "two")
            rec._on_vad_event(vad_end(silence=0.0))
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
        return [(text, round(at, 9)) for text, at in hooks.turns]

    assert in_every_order(play) == {repr([("one", 2.0), ("two", 3.8)])}


def test_words_that_come_as_the_endpointing_delay_ends_are_the_next_turn():
    """The endpointing timer and a final transcript (of speech the VAD did not hear) at one
    instant: the turn is committed without it, whichever of the two tasks trio runs first."""

    async def play():
        hooks = Hooks()
        async with trio.open_nursery() as nursery:
            rec = recognition(hooks, nursery)
            rec._on_vad_event(vad(VADEventType.START_OF_SPEECH))
            await trio.sleep(1.0)
            stt_says(rec, "one")
            await trio.sleep(0.5)
            rec._on_vad_event(vad_end())  # speech ended at 1.0: the timer commits at 1.8
            await trio.sleep_until(1.8)
            stt_says(rec, "two")
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
        return [(text, round(at, 9)) for text, at in hooks.turns]

    assert in_every_order(play) == {repr([("one", 1.8), ("two", 1.8)])}


async def test_a_hook_that_commits_the_turn_makes_what_was_decided_for_it_stale(autojump_clock):
    """A callback that commits the turn as its words arrive (a user's handler of
    ``user_input_transcribed``, say): the turn is committed once, and no reply is prepared for
    it afterwards."""
    hooks = Hooks()
    preempted = []
    hooks.on_preemptive_generation = preempted.append
    rec = AudioRecognition(
        hooks,
        vad=object(),
        turn_detection="vad",
        min_endpointing_delay=0.5,
        max_endpointing_delay=3.0,
        stt_enabled=True,
        clock=Clock(),
    )
    hooks.on_transcript = lambda event, *, turn_text: rec.commit()
    async with trio.open_nursery() as nursery:
        rec._nursery = nursery
        keep_time(rec, nursery)
        rec._on_vad_event(vad(VADEventType.START_OF_SPEECH))
        await trio.sleep(1)
        rec._on_vad_event(vad_end(silence=1.0))  # due at once, once the STT gives its verdict
        stt_says(rec, "Hello.")
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert hooks.turns == [("Hello.", 1.0)]
    assert preempted == []
