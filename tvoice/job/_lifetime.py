"""A job's lifetime, run the same way in a job process and in the console."""

from __future__ import annotations

import logging

import trio

from ._context import JobContext
from ._options import WorkerOptions

__all__ = ["run_job"]

logger = logging.getLogger("tvoice.job")

ENTRYPOINT_RETURNED = "entrypoint returned"
ENTRYPOINT_FAILED = "entrypoint failed"
ROOM_CLOSED = "the room closed"


async def run_job(options: WorkerOptions, ctx: JobContext) -> None:
    """Run ``options.entrypoint_fnc(ctx)`` as one job, start to end.

    The job ends when the entrypoint returns (its ``AgentSession`` is an ``async with``, so a
    returning entrypoint is a finished call), when it raises, when ``ctx.shutdown(reason)``
    is called, or when the room closes under the agent (deleted, or the connection lost for
    good); the entrypoint is then cancelled. Then the shutdown callbacks run, shielded,
    and the room is left.

    One deadline covers the whole shutdown: ``options.shutdown_timeout`` from the moment the
    job was asked to end. The entrypoint's own cleanup (its session closing) comes out of it,
    the callbacks get what is left, and leaving the room gets at least a moment even if they
    used it all. The process pool kills a job process only a moment after that deadline.
    An error in the entrypoint is logged and re-raised once that cleanup is done: the job
    failed. Cancelling ``run_job`` cleans up the same way.
    """
    failure: BaseException | None = None
    deadline: float | None = None
    try:
        async with trio.open_nursery() as nursery:

            async def entrypoint() -> None:
                nonlocal failure
                try:
                    await options.entrypoint_fnc(ctx)
                except Exception as exc:
                    failure = exc
                    logger.exception("the entrypoint failed", extra=ctx.log_context_fields)
                    ctx.shutdown(ENTRYPOINT_FAILED)
                else:
                    ctx.shutdown(ENTRYPOINT_RETURNED)

            async def room_closed() -> None:
                await ctx.room.wait_closed()
                ctx.shutdown(ROOM_CLOSED)

            nursery.start_soon(entrypoint)
            nursery.start_soon(room_closed)
            await ctx.wait_for_shutdown()
            deadline = trio.current_time() + options.shutdown_timeout
            nursery.cancel_scope.cancel()
    finally:
        if not ctx.shutdown_reason:
            ctx.shutdown("job cancelled")
        if deadline is None:  # run_job itself was cancelled: the request is now
            deadline = trio.current_time() + options.shutdown_timeout
        await ctx.run_shutdown_callbacks(timeout_s=deadline - trio.current_time())
        # Leaving the room is bounded too: a hung network must not keep the job alive.
        with trio.CancelScope(shield=True, deadline=max(deadline, trio.current_time() + 0.5)):
            try:
                await ctx.room.disconnect()
            except Exception:
                logger.exception("leaving the room failed", extra=ctx.log_context_fields)
        if ctx.shutdown_reason not in (ENTRYPOINT_RETURNED, ENTRYPOINT_FAILED):
            logger.info("job ended: %s", ctx.shutdown_reason, extra=ctx.log_context_fields)
    if failure is not None:
        raise failure
