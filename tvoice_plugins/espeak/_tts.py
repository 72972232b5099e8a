"""``espeak.TTS``: the light TTS, driving the ``espeak-ng`` program."""

from __future__ import annotations

import contextlib
import subprocess

import trio

from tvoice import APIConnectOptions
from tvoice import tts as tts_

from ._errors import bad_output, not_found, process_failed, start_failed
from ._wire import PcmDecoder, command

__all__ = ["TTS"]

_DEFAULT_OPTIONS = APIConnectOptions()
# espeak-ng's own voices all speak at this rate (MBROLA ones are resampled to it).
_SAMPLE_RATE = 22050
_READ_SIZE = 16384
_MAX_STDERR = 16384


class TTS(tts_.TTS):
    """espeak-ng text-to-speech: robotic, tiny, instant; ``apt-get install espeak-ng``.

    ``voice``: an espeak-ng voice (``espeak-ng --voices`` lists them), ``speed`` in words per
    minute, ``pitch`` from 0 to 99. Each synthesis runs ``executable`` once, and its audio is
    emitted as the program writes it, before it exits; 22050 Hz mono.

    ``stream()`` speaks each sentence as soon as it is complete: it is a
    :class:`tvoice.tts.StreamAdapter` over this TTS, since one espeak-ng run per sentence is
    exactly what the adapter does.
    """

    def __init__(
        self,
        *,
        voice: str = "en-us",
        speed: int = 175,
        pitch: int = 50,
        executable: str = "espeak-ng",
    ) -> None:
        if not voice:
            raise ValueError("voice must not be empty")
        if not 1 <= speed <= 1000:
            raise ValueError(f"speed is in words per minute (80 to 450 is usable), got {speed}")
        if not 0 <= pitch <= 99:
            raise ValueError(f"pitch must be in 0..99, got {pitch}")
        super().__init__(
            sample_rate=_SAMPLE_RATE,
            num_channels=1,
            capabilities=tts_.TTSCapabilities(streaming=True),
        )
        self._executable = executable
        self._command = command(executable, voice=voice, speed=speed, pitch=pitch)
        self._adapter = tts_.StreamAdapter(tts=self)

    @property
    def label(self) -> str:
        return "espeak.TTS"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = _DEFAULT_OPTIONS
    ) -> tts_.ChunkedStream:
        return ChunkedStream(self, text, self._command, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = _DEFAULT_OPTIONS
    ) -> tts_.SynthesizeStream:
        return self._adapter.stream(conn_options=conn_options)


class ChunkedStream(tts_.ChunkedStream):
    """The audio of one ``espeak.TTS.synthesize`` call: one run of espeak-ng.

    Leaving the stream early kills the process and waits for it, so none is left behind.
    """

    def __init__(
        self, tts: TTS, text: str, argv: list[str], *, conn_options: APIConnectOptions
    ) -> None:
        super().__init__(tts, text, conn_options=conn_options)
        self._argv = argv
        self._process: trio.Process | None = None

    @property
    def process(self) -> trio.Process | None:
        """The espeak-ng process, once started (its ``returncode`` is set once it is gone)."""
        return self._process

    async def _run(self) -> None:
        if not self.input_text.strip():
            return  # espeak-ng would say nothing: spare starting it
        executable = self._argv[0]
        try:
            proc = await trio.lowlevel.open_process(
                self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except FileNotFoundError:
            raise not_found(executable) from None
        except OSError as e:
            raise start_failed(executable, e) from e
        self._process = proc
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        stderr = bytearray()
        try:
            failure: Exception | None = None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_write_text, proc.stdin, self.input_text.encode())
                nursery.start_soon(_read_stderr, proc.stderr, stderr)
                try:
                    await self._pump(proc.stdout)
                except Exception as e:
                    # Raised below, outside the nursery: callers see the error itself, not an
                    # ExceptionGroup around it.
                    failure = e
                    nursery.cancel_scope.cancel()
            if failure is not None:
                raise failure
            returncode = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                # Reaping is immediate after SIGKILL; shielded, so that a cancellation (the
                # usual reason to be here) cannot leave a zombie behind.
                with trio.CancelScope(shield=True):
                    await proc.wait()
        if returncode != 0:
            raise process_failed(returncode, bytes(stderr))

    async def _pump(self, stdout: trio.abc.ReceiveStream) -> None:
        decoder = PcmDecoder(self._tts.sample_rate)
        async with stdout:
            while data := await stdout.receive_some(_READ_SIZE):
                try:
                    frames = decoder.push(data)
                except ValueError as e:
                    raise bad_output(str(e)) from None
                for frame in frames:
                    await self._emit_frame(frame)
        try:
            frames = decoder.flush()
        except ValueError as e:
            raise bad_output(str(e)) from None
        for frame in frames:
            await self._emit_frame(frame)


async def _write_text(stdin: trio.abc.SendStream, text: bytes) -> None:
    # Closing stdin is what tells espeak-ng that the text is complete.
    async with stdin:
        # A process that died early (an unknown voice) stops reading: its exit status and
        # stderr say why, not this broken pipe.
        with contextlib.suppress(trio.BrokenResourceError):
            await stdin.send_all(text)


async def _read_stderr(stderr: trio.abc.ReceiveStream, into: bytearray) -> None:
    # Read to the end even past the limit: a full pipe would block espeak-ng.
    async with stderr:
        while data := await stderr.receive_some(_READ_SIZE):
            if len(into) < _MAX_STDERR:
                into += data
