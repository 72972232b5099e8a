"""onnxruntime settings every tvoice plugin that runs a model on it shares."""

from __future__ import annotations

import onnxruntime

__all__ = ["without_spinning"]


def without_spinning(options: onnxruntime.SessionOptions) -> onnxruntime.SessionOptions:
    """``options`` with the session's pool threads sleeping between runs. By default they spin,
    and a spinning thread burns a core that other calls and models on the machine need (a
    Piper voice's pool took 46 ms of CPU in the 50 ms after each sentence)."""
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options
