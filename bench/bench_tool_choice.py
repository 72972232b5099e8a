"""How often the offline assistant chooses its tool right, on 20 questions asked aloud.

Each question is spoken by espeak-ng, transcribed by Whisper tiny.en and answered by
SmolLM2-135M-Instruct through this machine's inference server and the openai plugin, exactly
as in ``examples/assistant.py`` (its instructions and its ``get_weather`` tool). Ten questions
are about the weather and should call ``get_weather``; ten are not and should not. None of them
is among the examples the tool's description quotes.

    python bench/bench_tool_choice.py     -> bench/results/tool_choice.md
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import trio

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from assistant import Assistant  # noqa: E402

from tvoice.audio import read_wav  # noqa: E402
from tvoice.inference import local_models_url  # noqa: E402
from tvoice.llm import ChatContext, find_function_tools  # noqa: E402
from tvoice_plugins import openai  # noqa: E402

WEATHER = [
    "What is the weather in Paris?",
    "Is it raining in London right now?",
    "How hot is it in Tokyo today?",
    "Do I need an umbrella in New York?",
    "What's the temperature in Berlin?",
    "Will it be sunny in Madrid?",
    "Is it cold in Oslo?",
    "What's the forecast for Rome?",
    "How's the weather in Sydney?",
    "Is it windy in Chicago?",
]
OTHER = [
    "Tell me a joke.",
    "How are you today?",
    "What is two plus two?",
    "Who wrote Hamlet?",
    "Can you help me book a table?",
    "What's your name?",
    "Thank you, goodbye.",
    "What is the capital of France?",
    "Recommend a good book.",
    "What time is it?",
]


async def main() -> None:
    url = local_models_url()
    local = {"base_url": url, "api_key": "unused"}
    stt = openai.STT(model="whisper-tiny.en", stream=False, **local)
    llm = openai.LLM(model="SmolLM2-135M-Instruct", **local)
    agent = Assistant()
    tools = find_function_tools(agent)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for question in WEATHER + OTHER:
            wav = Path(folder) / "q.wav"
            await trio.run_process(
                ["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), question]
            )
            heard = await stt.recognize(read_wav(wav))
            text = heard.alternatives[0].text if heard.alternatives else ""
            ctx = ChatContext()
            ctx.add_message(role="system", content=agent.instructions)
            ctx.add_message(role="user", content=text)
            async with llm.chat(chat_ctx=ctx, tools=tools) as stream:
                chunks = await stream.collect()
            calls = [
                f"{c.name}({c.arguments})"
                for chunk in chunks
                if chunk.delta
                for c in chunk.delta.tool_calls
            ]
            wanted = question in WEATHER
            right = bool(calls) == wanted
            rows.append((question, text, calls, wanted, right))
            print(f"{'ok ' if right else 'BAD'} {question!r} heard {text!r} -> {calls}")
    await llm.aclose()
    await stt.aclose()
    score = sum(r[-1] for r in rows)
    weather = sum(r[-1] for r in rows if r[3])
    lines = [
        "# Tool choice of the offline assistant (SmolLM2-135M-Instruct), 20 spoken questions",
        "",
        f"Right: **{score} / 20** (weather questions calling get_weather: {weather} / 10; "
        f"other questions answered without a tool: {score - weather} / 10).",
        "",
        "| question (spoken) | Whisper heard | tools called (arguments) | right |",
        "|---|---|---|---|",
    ]
    for question, text, calls, _, right in rows:
        lines.append(
            f"| {question} | {text} | {', '.join(calls) or '-'} | {'yes' if right else 'no'} |"
        )
    out = ROOT / "bench" / "results" / "tool_choice.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"{score} / 20 right; written to {out}")


if __name__ == "__main__":
    trio.run(main)
