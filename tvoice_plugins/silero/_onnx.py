"""The Silero VAD ONNX model: finding the file, one shared session, and per-window inference.

The model (v5/v6) is recurrent. Each call takes one window of float audio in [-1, 1] preceded by
the last samples of the window before it (its "context"), the recurrent ``state`` and the rate
``sr``, and returns the speech probability and the next state::

    input  float32 (1, context + window)     512 + 64 samples at 16 kHz, 256 + 32 at 8 kHz
    state  float32 (2, 1, 128)               zeros at the start of a stream
    sr     int64   ()                        8000 or 16000
    ->  output (1, 1) probability, stateN (2, 1, 128)

The package also ships the same network exported for 16 kHz sequences,
``silero_vad_16k_sequence.onnx``: no branch on the rate, the recurrent state as the LSTM's own
``h`` and ``c``, and any number of windows per call::

    input  float32 (windows, 64 + 512)       each window with its context
    h, c   float32 (1, 1, 128)               zeros at the start of a stream
    ->  speech_probs (windows,), hn, cn

It gives the same probabilities to the bit, and a window costs about a fifth less CPU (no `If`
node and its subgraph to run), so a model loaded from ``silero_vad.onnx`` with that file beside
it runs 16 kHz streams on it; 8 kHz streams always run on ``silero_vad.onnx``.

A session holds only weights, so one serves every stream of the process; each stream keeps its
own state and context in a :class:`WindowInference`.

Every onnxruntime failure is translated here, the plugin's one error boundary, into
``tvoice.APIError(retryable=False)``: running the same window again would fail the same way.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime

from tvoice import APIError
from tvoice.audio import Int16Array

from .._onnxruntime import without_spinning

__all__ = ["SUPPORTED_RATES", "SileroModel", "WindowInference", "default_model_path", "load_model"]

SUPPORTED_RATES = (8000, 16000)
_WINDOW = {8000: 256, 16000: 512}
_CONTEXT = {8000: 32, 16000: 64}
_SEQUENCE_FILE = "silero_vad_16k_sequence.onnx"
_KEPT_BUFFER = 4096  # samples a stream's buffer keeps between calls, at most (over 0.25 s)
_MISSING = "silero_vad.onnx not found: pip install --no-deps silero-vad"

FloatArray = npt.NDArray[np.float32]
_INT16_SCALE = np.float32(1 / 32768)

_lock = threading.Lock()
_models: dict[str, SileroModel] = {}


def default_model_path() -> Path:
    """Where the ``silero-vad`` package keeps ``silero_vad.onnx``.

    The package is located, never imported: importing it imports torch, which tvoice does not
    need. Raises ``APIError(retryable=False)`` when the package or the file is missing.
    """
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise APIError(_MISSING, retryable=False)
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data" / "silero_vad.onnx"
        if path.is_file():
            return path
    raise APIError(_MISSING, retryable=False)


def load_model(path: str | os.PathLike[str] | None = None) -> SileroModel:
    """The process's :class:`SileroModel` for ``path`` (default: :func:`default_model_path`).

    The first call for a file loads it (tens of milliseconds, blocking); later calls return the
    same object. Thread-safe. Raises ``APIError(retryable=False)`` if the file is missing or is
    not a model onnxruntime can load.
    """
    resolved = default_model_path() if path is None else Path(path)
    key = os.path.realpath(resolved)
    with _lock:
        model = _models.get(key)
        if model is None:
            model = _models[key] = SileroModel(
                _new_session(key), key, sequence=_sequence_export_beside(key)
            )
    return model


def _sequence_export_beside(path: str) -> onnxruntime.InferenceSession | None:
    """A session on the package's 16 kHz sequence export when ``path`` is the package's
    ``silero_vad.onnx`` and the export sits beside it (silero-vad 6.2 ships both)."""
    sequence = Path(path).with_name(_SEQUENCE_FILE)
    if Path(path).name != "silero_vad.onnx" or not sequence.is_file():
        return None
    return _new_session(str(sequence))


def _new_session(path: str) -> onnxruntime.InferenceSession:
    if not os.path.isfile(path):
        raise APIError(f"Silero VAD model not found: {path}", retryable=False)
    opts = onnxruntime.SessionOptions()
    # One core per session: the model is tiny (a window costs a fraction of a millisecond), so
    # a thread pool would only add hand-offs, and a worker runs many sessions' streams side by
    # side. No spinning: idle pool threads must not burn the cores other jobs need.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    without_spinning(opts)
    opts.log_severity_level = 3  # the graph optimiser's notes are not the user's concern
    try:
        return onnxruntime.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise APIError(f"cannot load the Silero VAD model {path}: {e}", retryable=False) from e


class SileroModel:
    """A loaded Silero VAD model, shared by all streams: one ``onnxruntime.InferenceSession``,
    and a second one on the 16 kHz sequence export when the package's file sits beside it.

    Get it from :func:`load_model`, which keeps one per model file in the process.
    """

    __slots__ = ("_path", "_sequence", "_session")

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        path: str,
        *,
        sequence: onnxruntime.InferenceSession | None = None,
    ) -> None:
        self._session = session
        self._path = path
        self._sequence = sequence

    @property
    def session(self) -> onnxruntime.InferenceSession:
        """The onnxruntime session of the model file (stateless; safe to share)."""
        return self._session

    @property
    def sessions(self) -> tuple[onnxruntime.InferenceSession, ...]:
        """Every session this model runs windows on: the file's, then the 16 kHz sequence
        export's when there is one."""
        return (self._session,) if self._sequence is None else (self._session, self._sequence)

    @property
    def path(self) -> str:
        """The model file, with symbolic links resolved."""
        return self._path

    def inference(self, sample_rate: int) -> WindowInference:
        """Fresh recurrent state for one stream at ``sample_rate`` (8000 or 16000)."""
        if sample_rate == 16000 and self._sequence is not None:
            return WindowInference(self._sequence, sample_rate, sequence=True)
        return WindowInference(self._session, sample_rate)

    def __repr__(self) -> str:
        return f"SileroModel({self._path!r})"


class WindowInference:
    """One stream's use of the model: its recurrent state and the context between windows.

    :meth:`run` takes the samples received since the last call and returns one speech
    probability per complete window; a partial window waits for the next call.
    """

    __slots__ = ("_buffer", "_feed", "_filled", "_sequence", "_session", "context", "window")

    def __init__(
        self, session: onnxruntime.InferenceSession, sample_rate: int, *, sequence: bool = False
    ) -> None:
        if sample_rate not in SUPPORTED_RATES:
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        if sequence and sample_rate != 16000:
            raise ValueError(f"the sequence export runs at 16000 Hz, not {sample_rate}")
        self._session = session
        self._sequence = sequence
        self.window = _WINDOW[sample_rate]
        self.context = _CONTEXT[sample_rate]
        # The context (silence at first), then the samples not yet run: window i with its
        # context is the contiguous slice [i*window, i*window + context + window). Frames are
        # copied in as floats, so a frame costs one numpy call and no new array; the buffer
        # grows to the largest frame a stream gets.
        self._buffer: FloatArray = np.zeros(self.context + self.window, np.float32)
        self._filled = self.context
        if sequence:
            zeros = np.zeros((1, 1, 128), np.float32)
            self._feed: dict[str, Any] = {"h": zeros, "c": zeros}
        else:
            self._feed = {
                "state": np.zeros((2, 1, 128), np.float32),
                "sr": np.array(sample_rate, np.int64),
            }

    def run(self, samples: FloatArray | Int16Array) -> list[float]:
        """Speech probability of each window completed by ``samples``: float32 in [-1, 1], or
        int16 PCM (scaled by 1/32768 as it is copied in)."""
        start = self._filled
        end = start + len(samples)
        if end > len(self._buffer):
            grown = np.empty(end, np.float32)
            grown[:start] = self._buffer[:start]
            self._buffer = grown
        buffer = self._buffer
        if samples.dtype == np.int16:
            np.multiply(samples, _INT16_SCALE, out=buffer[start:end], dtype=np.float32)
        else:
            buffer[start:end] = samples
        count = (end - self.context) // self.window
        if not count:
            self._filled = end
            return []
        try:
            if self._sequence:
                probabilities = self._run_sequence(buffer, count)
            else:
                probabilities = self._run_each(buffer, count)
        except Exception as e:
            raise APIError(f"Silero VAD inference failed: {e}", retryable=False) from e
        # Keep the context and the partial window at the front; a buffer grown for one long
        # block (a file pushed whole) is not kept for the rest of the stream.
        run = count * self.window
        self._filled = end - run
        if len(buffer) > _KEPT_BUFFER:
            self._buffer = buffer[run : run + self.context + self.window].copy()
        else:
            buffer[: self._filled] = buffer[run:end]
        return probabilities

    def _run_each(self, buffer: FloatArray, count: int) -> list[float]:
        feed, run, size = self._feed, self._session.run, self.context + self.window
        probabilities: list[float] = []
        for i in range(count):
            start = i * self.window
            feed["input"] = buffer[start : start + size].reshape(1, size)
            output, feed["state"] = run(("output", "stateN"), feed)
            probabilities.append(float(output[0, 0]))
        del feed["input"]
        return probabilities

    def _run_sequence(self, buffer: FloatArray, count: int) -> list[float]:
        # All the windows in one call: the export carries h and c from each to the next.
        feed, size = self._feed, self.context + self.window
        if count == 1:
            feed["input"] = buffer[:size].reshape(1, size)
        else:
            views = np.lib.stride_tricks.sliding_window_view(buffer, size)
            feed["input"] = np.ascontiguousarray(views[: count * self.window : self.window])
        probabilities, feed["h"], feed["c"] = self._session.run(("speech_probs", "hn", "cn"), feed)
        del feed["input"]
        result: list[float] = probabilities.tolist()
        return result
