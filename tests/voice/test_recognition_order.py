"""Recognition's account of the STT's verdicts, whichever of the VAD and the STT closes an
utterance first (real VADs and STTs do both: the bench's scripted ones and network STTs)."""

import trio

from tvoice.stt import SpeechData, SpeechEvent, SpeechEventType
from tvoice.vad import VADEvent, VADEventType
from tvoice.voice._recognition import AudioRecognition


class Hooks:
    def __init__(self):
        self.turns = []

    def on_end_of_turn(self, turn):
        self.turns.append((turn.transcript, trio.current_time()))

    def __getattr__(self, name):  # the other hooks: nothing to record
        return lambda *args, **kwargs: None


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
    )
    async with trio.open_nursery() as nursery:
        rec._nursery = nursery  # what run() sets; no audio is needed to order events by hand
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
    )
    async with trio.open_nursery() as nursery:
        rec._nursery = nursery
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
        )
        async with trio.open_nursery() as nursery:
            rec._nursery = nursery
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
