"""A test agent of which one process warms fast and every other far too slowly: the first
prewarm to claim $TVOICE_TEST_PREWARM_CLAIM (a file it creates, with its pid) sleeps 1 s, the
others 60 s. The entrypoint writes its pid to the job's metadata, a path."""

import os
import time

import trio


def prewarm(proc):
    try:
        claim = os.open(
            os.environ["TVOICE_TEST_PREWARM_CLAIM"], os.O_CREAT | os.O_EXCL | os.O_WRONLY
        )
    except FileExistsError:
        time.sleep(60)
        return
    os.write(claim, str(os.getpid()).encode())
    os.close(claim)
    time.sleep(1.0)


async def entrypoint(ctx):
    await trio.Path(ctx.job.metadata).write_text(str(os.getpid()))
