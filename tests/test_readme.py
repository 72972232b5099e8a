"""The README's examples run as written."""

import re
from pathlib import Path

import trio
import trio.testing

README = Path(__file__).parent.parent / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_agent_and_its_timeline_test_run():
    namespace = {}
    agent_block, test_block = python_blocks()[:2]
    exec(compile(agent_block, "README agent", "exec"), namespace)
    exec(compile(test_block, "README test", "exec"), namespace)
    clock = trio.testing.MockClock(autojump_threshold=0)
    trio.run(namespace["test_greeting"], clock, clock=clock)
