"""A short chaos run on the real LiveKit server (``nox -s chaos`` runs a long one): calls
spoken by clients while every kind of fault is injected once; no worker restart, no chat
history lost, and every fault survived.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._chaos import FAULTS, run_chaos

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:The HMAC key is 6 bytes long:jwt.warnings.InsecureKeyLengthWarning"
    ),
]


def test_calls_go_on_through_every_kind_of_fault(tmp_path: Path) -> None:
    report = run_chaos(tmp_path, rounds=1, calls=3, fault_every=2.5)
    table = report.table() + "\n\n" + report.calls_log()
    print(table)
    assert sorted(f.kind for f in report.faults) == sorted(FAULTS), table
    assert report.worker_restarts == 0, table
    assert report.history_lost == 0, (report.lost_details, table)
    assert report.completed > 0, table
