"""A test agent that joins its job's room, says so in the file named by the job's metadata
(with the publisher the job is for and the participant its room links), and stays until the job
is shut down."""

import trio


async def entrypoint(ctx):
    await ctx.connect()
    linked = ctx.room.options.participant_identity
    await trio.Path(ctx.job.metadata).write_text(
        f"{ctx.room.name} {ctx.room.local_identity} {ctx.job.publisher_identity} {linked}"
    )
    await trio.sleep_forever()
