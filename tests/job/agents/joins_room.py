"""A test agent that joins its job's room, says so in the file named by the job's metadata, and
stays until the job is shut down."""

import trio


async def entrypoint(ctx):
    await ctx.connect()
    await trio.Path(ctx.job.metadata).write_text(f"{ctx.room.name} {ctx.room.local_identity}")
    await trio.sleep_forever()
