"""OpenAI-compatible providers that differ from OpenAI only in their URL and key variable."""

from __future__ import annotations

import attrs

__all__ = ["OPENAI", "PRESETS", "Preset", "preset_named"]


@attrs.frozen
class Preset:
    """Where a provider's OpenAI-compatible API lives and which variable holds its key.

    ``key_required``: hosted providers refuse requests without a key, so a missing one is
    reported at construction; local servers (Ollama, vLLM, llama.cpp) need none.
    """

    name: str
    base_url: str
    api_key_env: str
    key_required: bool = True


OPENAI = Preset("openai", "https://api.openai.com/v1", "OPENAI_API_KEY")

PRESETS = {
    p.name: p
    for p in (
        OPENAI,
        Preset("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
        Preset("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
        Preset("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
        Preset("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
        Preset("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
        Preset("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY"),
        Preset("xai", "https://api.x.ai/v1", "XAI_API_KEY"),
        Preset("perplexity", "https://api.perplexity.ai", "PERPLEXITY_API_KEY"),
        Preset("ollama", "http://localhost:11434/v1", "OLLAMA_API_KEY", key_required=False),
        Preset("vllm", "http://localhost:8000/v1", "VLLM_API_KEY", key_required=False),
        Preset("llamacpp", "http://localhost:8080/v1", "LLAMA_API_KEY", key_required=False),
    )
}
"""Every preset by name; ``LLM.with_<name>(...)`` uses them."""


def preset_named(name: str) -> Preset:
    """The preset ``name``; ValueError naming the presets there are."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"no preset {name!r}; presets: {sorted(PRESETS)}") from None
