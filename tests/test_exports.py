"""The public surface: names other code relies on (DESIGN.md section 3)."""

import subprocess
import sys

import tvoice

TOP_LEVEL = {
    "Agent",
    "AgentSession",
    "AgentTask",
    "SpeechHandle",
    "RunContext",
    "function_tool",
    "ToolError",
    "StopResponse",
    "ChatContext",
    "ChatMessage",
    "FunctionCall",
    "FunctionCallOutput",
    "AgentHandoff",
    "AudioFrame",
    "APIError",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
}
SUBMODULES = {"llm", "stt", "tts", "vad", "tokenize", "metrics", "io", "audio", "voice"}


def test_top_level_names():
    missing = {name for name in TOP_LEVEL | SUBMODULES if not hasattr(tvoice, name)}
    assert not missing


def test_importing_tvoice_does_not_import_the_testing_kit_or_asyncio_bridges():
    code = (
        "import sys, tvoice; "
        "bad = [m for m in ('tvoice.testing', 'livekit', 'hypothesis') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_model_layer_names():
    from tvoice import llm, stt, testing, tts, vad

    for module, names in {
        llm: {"LLM", "LLMStream", "ChatChunk", "ChoiceDelta", "FallbackAdapter", "ToolChoice"},
        stt: {
            "STT",
            "RecognizeStream",
            "SpeechEvent",
            "SpeechEventType",
            "SpeechData",
            "StreamAdapter",
            "FallbackAdapter",
        },
        tts: {
            "TTS",
            "ChunkedStream",
            "SynthesizeStream",
            "SynthesizedAudio",
            "StreamAdapter",
            "FallbackAdapter",
        },
        vad: {"VAD", "VADStream", "VADEvent", "VADEventType"},
        testing: {
            "Timeline",
            "check_llm",
            "check_stt",
            "check_tts",
            "check_vad",
            "FakeLLM",
            "FakeSTT",
            "FakeTTS",
            "FakeVAD",
            "FakeAudioOutput",
        },
    }.items():
        assert not {n for n in names if not hasattr(module, n)}, module.__name__


def test_every_public_name_has_a_docstring():
    import inspect

    for name in TOP_LEVEL:
        obj = getattr(tvoice, name)
        assert inspect.getdoc(obj), name
