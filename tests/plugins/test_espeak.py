"""espeak.TTS driving the real espeak-ng: conformance, streaming, process hygiene, errors."""

import os
import stat
import struct
from pathlib import Path

import numpy as np
import pytest
import trio

from tvoice import APIConnectionError, APIError
from tvoice.audio import AudioFrame, wav_bytes
from tvoice.testing import check_tts
from tvoice.tts import StreamAdapterWrapper
from tvoice_plugins import espeak
from tvoice_plugins.espeak._wire import FRAME_DURATION, PcmDecoder, parse_wav_header

SENTENCES = (
    "The first sentence is here, and it is long enough. ",
    "Then comes a second one, of about the same length. ",
    "And a third sentence closes this little speech.",
)
# Minutes of speech: far more than the pipe and the output channel hold, so espeak-ng is still
# running (blocked writing) when the first frames have been read.
LONG_TEXT = "This is a rather long sentence that espeak will take a while to say. " * 60
# The real clock: limits that only a hang can reach.
LIMIT = 30.0


async def collect(tts, text):
    async with tts.synthesize(text) as chunked:
        return await chunked.collect()


def audio_of(items):
    return [i.frame for i in items if not i.is_final]


def espeak_children() -> dict[int, str]:
    """This process's espeak-ng children, zombies included: {pid: state}."""
    found = {}
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            line = path.read_text()
        except OSError:
            continue  # exited meanwhile
        comm = line[line.index("(") + 1 : line.rindex(")")]
        state, ppid = line[line.rindex(")") + 2 :].split()[:2]
        if comm == "espeak-ng" and int(ppid) == os.getpid():
            found[int(path.parent.name)] = state
    return found


def fake_executable(tmp_path, script: str) -> str:
    path = tmp_path / "fake-espeak"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


async def test_conformance():
    await check_tts(espeak.TTS(), broken=espeak.TTS(executable="/nonexistent/espeak-ng"))


async def test_frames_are_short_and_the_audio_plausible():
    tts = espeak.TTS()
    assert (tts.sample_rate, tts.num_channels) == (22050, 1)
    items = await collect(tts, "This sentence takes well over half a second to say.")
    frames = audio_of(items)
    assert [i.is_final for i in items].count(True) == 1
    assert items[-1].is_final
    assert all(0 < f.duration <= FRAME_DURATION + 1e-9 for f in frames)
    assert all(f.sample_rate == 22050 and f.data.dtype == np.int16 for f in frames)
    assert 0.5 < sum(f.duration for f in frames) < 10.0
    assert max(int(np.abs(f.data).max()) for f in frames) > 1000


async def test_speed_changes_the_duration():
    text = "How long does this take to say?"
    slow = sum(f.duration for f in audio_of(await collect(espeak.TTS(speed=100), text)))
    fast = sum(f.duration for f in audio_of(await collect(espeak.TTS(speed=300), text)))
    assert slow > 1.8 * fast


@pytest.mark.parametrize(
    "text", ["-v xx says the dash", "--help is text too", "-f /etc/hostname", "-w out.wav"]
)
async def test_text_that_looks_like_options_is_spoken(text):
    frames = audio_of(await collect(espeak.TTS(), text))
    assert sum(f.duration for f in frames) > 0.2
    assert max(int(np.abs(f.data).max()) for f in frames) > 1000


async def test_the_first_audio_comes_before_the_process_exits():
    with trio.fail_after(LIMIT):
        async with espeak.TTS().synthesize(LONG_TEXT) as chunked:
            first = await chunked.__anext__()
            assert first.frame.samples_per_channel > 0
            assert chunked.process.returncode is None  # still speaking
            await chunked.collect()
        assert chunked.process.returncode == 0


async def test_leaving_a_synthesis_early_kills_espeak():
    async with espeak.TTS().synthesize(LONG_TEXT) as chunked:
        await chunked.__anext__()
        pid = chunked.process.pid
        assert pid in espeak_children()
    assert chunked.process.returncode is not None
    assert pid not in espeak_children()  # neither running nor a zombie
    assert not await trio.Path(f"/proc/{pid}").exists()


async def test_a_cancelled_synthesis_leaves_no_process():
    pids = []
    with trio.move_on_after(LIMIT) as scope:
        async with espeak.TTS().synthesize(LONG_TEXT) as chunked:
            await chunked.__anext__()
            pids.append(chunked.process.pid)
            scope.cancel()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert pids
    assert espeak_children() == {}


async def test_empty_text_starts_no_process():
    async with espeak.TTS().synthesize("  \n") as chunked:
        items = await chunked.collect()
    assert [i.is_final for i in items] == [True]
    assert chunked.process is None


async def test_streaming_speaks_a_sentence_before_the_text_is_complete():
    tts = espeak.TTS()
    assert tts.capabilities.streaming
    with trio.fail_after(LIMIT):
        async with tts.stream() as stream:
            assert isinstance(stream, StreamAdapterWrapper)  # one espeak-ng run per sentence
            # The second sentence's first word is what makes the first one certainly ended.
            await stream.push_text(SENTENCES[0])
            await stream.push_text(SENTENCES[1])
            first = await stream.__anext__()  # no flush, no end of input: sentence 1 alone
            assert not first.is_final
            await stream.push_text(SENTENCES[2])
            stream.end_input()
            rest = await stream.collect()
    items = [first, *rest]
    assert [i.is_final for i in items].count(True) == 1
    assert items[-1].is_final
    assert sum(i.frame.duration for i in items) > 3 * 1.5


async def test_a_missing_executable_is_a_connection_error():
    tts = espeak.TTS(executable="/nonexistent/espeak-ng")
    with pytest.raises(APIConnectionError, match="apt-get install espeak-ng") as caught:
        await collect(tts, "Hello.")
    assert not caught.value.retryable


async def test_an_unknown_voice_is_an_api_error_with_espeaks_message():
    # (A made-up name: "no-such-voice" would be Norwegian, "no", to espeak-ng.)
    with pytest.raises(APIError, match=r"status 1: .*voice does not exist") as caught:
        await collect(espeak.TTS(voice="nosuchvoice"), "Hello.")
    assert not caught.value.retryable


async def test_a_failing_program_reports_its_stderr(tmp_path):
    tts = espeak.TTS(executable=fake_executable(tmp_path, "echo 'out of luck' >&2\nexit 3\n"))
    with pytest.raises(APIError, match="status 3: out of luck"):
        await collect(tts, "Hello.")


async def test_a_flood_on_stderr_neither_blocks_nor_floods_the_error(tmp_path):
    script = "cat >/dev/null\nhead -c 300000 /dev/zero | tr '\\0' x >&2\nexit 2\n"
    tts = espeak.TTS(executable=fake_executable(tmp_path, script))
    with trio.fail_after(LIMIT), pytest.raises(APIError, match="status 2: xxx") as caught:
        await collect(tts, "Hello.")
    assert len(str(caught.value)) < 40_000


async def test_output_that_is_not_wav_is_an_api_error(tmp_path):
    tts = espeak.TTS(executable=fake_executable(tmp_path, "cat >/dev/null\necho not a wav file\n"))
    with pytest.raises(APIError, match="unexpected output: not a WAV stream"):
        await collect(tts, "Hello.")


async def test_output_that_ends_inside_the_header_is_an_api_error(tmp_path):
    tts = espeak.TTS(executable=fake_executable(tmp_path, "cat >/dev/null\nprintf RIFF\n"))
    with pytest.raises(APIError, match=r"unexpected output: .*ended within its WAV header"):
        await collect(tts, "Hello.")


def test_a_program_that_is_not_executable_is_a_connection_error(tmp_path):
    path = tmp_path / "plain-file"
    path.write_text("")

    async def main():
        await collect(espeak.TTS(executable=str(path)), "Hello.")

    with pytest.raises(APIConnectionError, match="could not start"):
        trio.run(main)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"speed": 0}, "speed"), ({"pitch": 100}, "pitch"), ({"voice": ""}, "voice")],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        espeak.TTS(**options)


def tone(duration: float, rate: int) -> AudioFrame:
    t = np.arange(round(duration * rate)) / rate
    return AudioFrame((np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16), rate)


def test_the_header_is_parsed_whatever_the_pieces():
    wav = wav_bytes(tone(0.3, 22050))
    for n in range(len(wav)):
        parsed = parse_wav_header(wav[:n])
        assert parsed is None or n >= 44
    fmt, offset = parse_wav_header(wav)
    assert (fmt.sample_rate, fmt.num_channels, offset) == (22050, 1, 44)


def test_extra_chunks_before_the_samples_are_skipped():
    wav = wav_bytes(tone(0.1, 22050))
    # An odd-sized LIST chunk (padded to even) between the format and the samples.
    extra = b"LIST" + (5).to_bytes(4, "little") + b"abcde\0"
    fmt, offset = parse_wav_header(wav[:36] + extra + wav[36:])
    assert (fmt.sample_rate, offset) == (22050, 44 + len(extra))


@pytest.mark.parametrize(
    "data",
    [
        b"RIFX\0\0\0\0WAVEfmt ",
        b"RIFF\0\0\0\0WAVEdata\0\0\0\0",  # samples before their format
        b"RIFF\0\0\0\0WAVE" + b"JUNK" + (8000).to_bytes(4, "little") + bytes(8000),
    ],
)
def test_bad_headers_are_refused(data):
    with pytest.raises(ValueError, match="WAV"):
        parse_wav_header(data)


def header(*, tag=1, channels=1, rate=22050, bits=16, fmt_size=16) -> bytes:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * 2, channels * 2, bits)
    fmt = fmt[:fmt_size]
    return (
        b"RIFF\xff\xff\xff\x7fWAVEfmt "
        + len(fmt).to_bytes(4, "little")
        + fmt
        + b"data\xff\xff\xff\x7f"
    )


def test_the_header_sizes_espeak_leaves_open_are_fine():
    fmt, offset = parse_wav_header(header(rate=16000) + bytes(10))
    assert (fmt.sample_rate, fmt.num_channels, offset) == (16000, 1, 44)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bits": 8}, "8-bit samples"),
        ({"tag": 3, "bits": 32}, "format 0x3"),
        ({"channels": 0}, "0 channels"),
        ({"rate": 0}, "at 0 Hz"),
        ({"fmt_size": 14}, "format chunk of 14 bytes"),
    ],
)
def test_formats_other_than_16_bit_pcm_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        parse_wav_header(header(**options))


def test_the_decoder_refuses_stereo():
    with pytest.raises(ValueError, match="2 channels, not mono"):
        PcmDecoder(22050).push(header(channels=2) + bytes(100))


def test_the_decoder_frames_byte_pieces_and_resamples_other_rates():
    source = tone(0.5, 16000)  # what an MBROLA voice would say
    wav = wav_bytes(source)
    decoder = PcmDecoder(22050)
    frames = []
    for i in range(0, len(wav), 777):  # pieces cutting the header and samples anywhere
        frames += decoder.push(wav[i : i + 777])
    frames += decoder.flush()
    assert all(f.sample_rate == 22050 for f in frames)
    assert all(f.duration <= 2 * FRAME_DURATION for f in frames)
    assert sum(f.duration for f in frames) == pytest.approx(0.5, abs=0.01)


def test_the_decoder_passes_the_tts_rate_through_unchanged():
    source = tone(0.25, 22050)
    decoder = PcmDecoder(22050)
    frames = decoder.push(wav_bytes(source)) + decoder.flush()
    assert np.array_equal(np.concatenate([f.data for f in frames]), source.data)
    assert all(f.duration <= FRAME_DURATION + 1e-9 for f in frames)
