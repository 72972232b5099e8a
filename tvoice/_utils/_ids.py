from __future__ import annotations

import os
import random

# Ids name things in logs, events and the history; they are not secrets, so they come from a
# generator of the process's own (seeded from the system, reseeded in a forked child, untouched
# by ``random.seed``) rather than a system call each (several per turn).
_rng = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_rng.seed)
_bits = _rng.getrandbits


def short_id(prefix: str) -> str:
    """A unique, readable id such as ``speech_3f9a1c2b0d4e``."""
    return f"{prefix}_{_bits(48):012x}"
