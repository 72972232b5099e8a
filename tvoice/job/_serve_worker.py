"""A whole worker: the process pool, the health server and the LiveKit connection, together."""

from __future__ import annotations

import logging
import signal

import trio

from ._health import HealthServer
from ._options import WorkerOptions
from ._pool import ProcessPool
from ._worker import Worker

__all__ = ["serve_worker"]

logger = logging.getLogger("tvoice.worker")


async def serve_worker(
    options: WorkerOptions,
    target: str,
    *,
    log_level: int | None = None,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[Worker] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``target``'s agent (an agent file, ``PATH[:entrypoint]``) until drained.

    Starts the warm process pool and the health server, then registers with the server;
    ``task_status.started(worker)`` once registered. With ``handle_signals``, the first SIGTERM
    or SIGINT drains (no new jobs; running ones get ``options.drain_timeout``), a second one
    stops at once (running jobs still get their bounded shutdown). Returns once drained.
    """
    pool = ProcessPool(target=target, options=options, log_level=log_level)
    worker = Worker(options, pool=pool)
    health = HealthServer(worker, host=options.host, port=options.port)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        await nursery.start(health.run)
        if handle_signals:
            nursery.start_soon(_drain_on_signals, worker, nursery.cancel_scope)

        async def run_worker(*, task_status: trio.TaskStatus[None]) -> None:
            await worker.run(task_status=task_status)
            # Drained: stop the pool and the health server.
            nursery.cancel_scope.cancel()

        await nursery.start(run_worker)
        task_status.started(worker)


async def _drain_on_signals(worker: Worker, scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if not worker.draining:
                logger.warning(
                    "%s: draining (running jobs finish, no new ones); again to stop now",
                    signal.Signals(signum).name,
                )
                worker.drain()
            else:
                logger.warning("%s again: stopping now", signal.Signals(signum).name)
                scope.cancel()
                return
