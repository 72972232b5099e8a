"""A helpful voice assistant with a weather tool.

tvoice console examples/assistant.py --input examples/question.wav --output reply.wav
tvoice console examples/assistant.py --text
"""

from __future__ import annotations

from typing import Annotated

from offline import PREWARM_TIMEOUT, models, prewarm

from tvoice import (
    Agent,
    AgentSession,
    JobContext,
    RunContext,
    ToolError,
    WorkerOptions,
    function_tool,
    run_app,
)

# A stand-in for a weather service, so the example runs offline.
WEATHER = {
    "paris": "sunny, 21 degrees Celsius",
    "london": "light rain, 14 degrees Celsius",
    "tokyo": "cloudy, 18 degrees Celsius",
    "new york": "clear skies, 24 degrees Celsius",
}


class Assistant(Agent):
    def __init__(self) -> None:
        super().__init__(
            instructions=(
                "You are a friendly voice assistant. Answer in one or two short sentences, "
                "without lists or formatting. Use get_weather for questions about the weather."
            )
        )

    @function_tool
    async def get_weather(
        self, context: RunContext, city: Annotated[str, "The city, for example Paris"]
    ) -> str:
        """Look up the current weather in a city. Examples: "Is it snowing in Denver?",
        "What's the weather like in Lima?", "Will it rain tomorrow in Dublin?"."""
        city = city.strip(" ,.!?")
        weather = WEATHER.get(city.lower())
        if weather is None:
            raise ToolError(f"no weather data for {city}")
        return f"The weather in {city} is {weather}."


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    async with AgentSession(**models(ctx.proc)) as session:
        await session.start(Assistant(), room=ctx.room)
        await session.wait_closed()


options = WorkerOptions(
    entrypoint_fnc=entrypoint, prewarm_fnc=prewarm, initialize_process_timeout=PREWARM_TIMEOUT
)

if __name__ == "__main__":
    run_app(options)
