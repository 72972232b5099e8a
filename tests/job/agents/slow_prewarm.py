"""A test agent whose prewarm takes far too long."""

import time


def prewarm(proc):
    time.sleep(60)


async def entrypoint(ctx):
    pass
