"""A test agent whose job does what its metadata says (JSON: {"action": ..., "out": PATH}).

prewarm appends its pid to $TVOICE_TEST_PREWARM_LOG (when set) and leaves a mark in userdata;
the entrypoint writes what it saw to "out" before acting.
"""

import json
import os
import sys
import time
from pathlib import Path

import trio


def prewarm(proc):
    proc.userdata["prewarmed_in"] = os.getpid()
    log = os.environ.get("TVOICE_TEST_PREWARM_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")


def _bridged():
    """Whether the job runs with trio as the guest of an asyncio host (the LiveKit bridge)."""
    try:
        from tvoice.livekit import current_bridge

        current_bridge()
    except (ImportError, RuntimeError, LookupError):
        return False
    return True


def _write(path, **fields):
    Path(path).write_text(json.dumps(fields))


async def entrypoint(ctx):
    spec = json.loads(ctx.job.metadata or "{}")
    out = spec.get("out")
    if out:
        _write(
            out,
            pid=os.getpid(),
            userdata=ctx.proc.userdata,
            job_id=ctx.job.id,
            bridged=_bridged(),
            metadata_chars=len(ctx.job.metadata),
        )
    action = spec.get("action", "return")
    if action == "return":
        return
    if action == "raise":
        raise RuntimeError("boom")
    if action == "raise_long":
        raise RuntimeError("boom " * 500_000)  # 2.5 MB of error text
    if action == "wait":

        async def note_shutdown():
            _write(spec["callback_out"], reason=ctx.shutdown_reason)

        ctx.add_shutdown_callback(note_shutdown)
        await trio.sleep_forever()
    if action == "slow_shutdown":
        # A session that takes 0.3 s to close, then a callback that uses what is left.
        async def hang():
            try:
                await trio.sleep_forever()
            finally:
                _write(spec["callback_out"], reason=ctx.shutdown_reason)

        ctx.add_shutdown_callback(hang)
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(0.3)
    if action == "hang":
        with trio.CancelScope(shield=True):
            await trio.sleep_forever()
    if action == "alloc":
        hog = []
        for _ in range(spec["mb"] // 10):  # 10 MB every 50 ms: a leak the pool sees growing
            hog.append(bytearray(b"\1") * (10 * 1024 * 1024))
            await trio.sleep(0.05)
        await trio.sleep_forever()
    if action == "block":
        time.sleep(60)  # noqa: ASYNC251 - the point: a process that stops answering pings
    if action == "garbage":
        os.write(int(sys.argv[1]), b"\xff\xff\xff\xffnot a message")
        await trio.sleep_forever()
    raise ValueError(f"unknown action {action!r}")
