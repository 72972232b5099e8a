"""Finding an agent file's entrypoint: ``path/to/agent.py[:name]`` (lives in :mod:`tvoice.job`,
where job processes load it too)."""

from ..job._loader import load_agent_file as load_agent_file

__all__ = ["load_agent_file"]
