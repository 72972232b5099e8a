"""``tvoice worker --host``: where the health and metrics server listens."""

from tvoice.cli import _parser
from tvoice.cli._worker_command import worker_options
from tvoice.job import WorkerOptions


async def _never(ctx: object) -> None:
    raise AssertionError("not called")


def test_the_worker_takes_a_health_server_host():
    args = _parser(with_path=True).parse_args(["worker", "a.py", "--host", "0.0.0.0"])
    assert worker_options(WorkerOptions(entrypoint_fnc=_never), args).host == "0.0.0.0"
    args = _parser(with_path=True).parse_args(["worker", "a.py"])
    assert worker_options(WorkerOptions(entrypoint_fnc=_never), args).host == "127.0.0.1"
