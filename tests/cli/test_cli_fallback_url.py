"""``tvoice worker --fallback-url``: the other nodes of a LiveKit deployment."""

from tvoice.cli import _parser
from tvoice.cli._worker_command import worker_options
from tvoice.job import WorkerOptions


async def _never(ctx: object) -> None:
    raise AssertionError("not called")


def test_the_worker_takes_fallback_urls_in_order():
    argv = ["worker", "a.py", "--fallback-url", "ws://b:7880", "--fallback-url", "ws://c:7880"]
    args = _parser(with_path=True).parse_args(argv)
    options = worker_options(WorkerOptions(entrypoint_fnc=_never, fallback_urls=["x"]), args)
    assert options.fallback_urls == ("ws://b:7880", "ws://c:7880")
    args = _parser(with_path=True).parse_args(["worker", "a.py"])
    assert worker_options(WorkerOptions(entrypoint_fnc=_never), args).fallback_urls == ()


def test_one_fallback_url_may_be_given_as_a_string():
    options = WorkerOptions(entrypoint_fnc=_never, fallback_urls="ws://b:7880")
    assert options.fallback_urls == ("ws://b:7880",)
