"""A test agent whose prewarm fails."""


def prewarm(proc):
    raise ValueError("no model here")


async def entrypoint(ctx):
    pass
