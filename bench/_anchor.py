"""An anchor we can trust: both sides' locked environments, and LiveKit's figures beside the
previous run's.

A ratio against LiveKit Agents is a result only while LiveKit's own figures hold still, and they
can move without anyone deciding it: a fresh environment resolves newer packages, the machine
changes or is busy. So each side is installed from a lock (``bench/requirements-*.txt``, written
by ``nox -s bench_lock``) and the run checks what is installed against it; and LiveKit's figures
are kept after each full run (``latest.anchor.json`` beside the report) for the next run to set
its own beside. A figure whose median moved by more than the spread of either run (min-max
across repetitions; at least ``ANCHOR_FLOOR`` of the previous median, so that a figure measured
once or with a tight spread is not flagged for noise) is "moved": the report gives it no ratio
and no verdict until the move is explained.

Runs in tvoice's environment (``run.py``); each side's installed set is read by its own python.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOCKS = {"tvoice": HERE / "requirements-tvoice.txt", "livekit": HERE / "requirements-livekit.txt"}
# Installed besides the lock on purpose: tvoice itself (editable, --no-deps) and the package that
# carries the Silero model file (--no-deps: its declared torch is not used); and the installers a
# plain `python -m venv` brings.
UNLOCKED = {
    "tvoice": {"tvoice", "silero-vad", "pip", "setuptools", "wheel"},
    "livekit": {"pip", "setuptools", "wheel"},
}
ANCHOR_FLOOR = 0.05
# The distributions the report names (the rest is in the lock).
NAMED = {
    "tvoice": ("trio", "onnxruntime", "numpy", "silero-vad"),
    "livekit": ("livekit-agents", "livekit", "livekit-plugins-silero", "onnxruntime", "numpy"),
}

_LIST_INSTALLED = (
    "import importlib.metadata as m, json, sys; print(json.dumps({'python': sys.version.split()[0],"
    " 'dists': {d.metadata['Name']: d.version for d in m.distributions() if d.metadata['Name']}}))"
)


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """``name -> version`` of a ``uv pip compile`` output (``name==version`` lines)."""
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[canonical(name)] = version.strip()
    return pins


def environment(side: str, python: str) -> dict[str, Any]:
    """What ``python`` has installed, checked against ``side``'s lock."""
    out = subprocess.run(
        [python, "-c", _LIST_INSTALLED], capture_output=True, text=True, check=True
    ).stdout
    listed = json.loads(out)
    have = {canonical(k): v for k, v in listed["dists"].items()}
    lock = LOCKS[side]
    pins = read_lock(lock) if lock.exists() else {}
    differences = [
        f"{name} {have.get(name, 'missing')} (locked {version})"
        for name, version in sorted(pins.items())
        if have.get(name) != version
    ]
    differences += [
        f"{name} {have[name]} (not in the lock)"
        for name in sorted(set(have) - set(pins) - UNLOCKED[side])
    ]
    if not lock.exists():
        differences.insert(0, f"no lock at {lock.relative_to(ROOT)}")
    return {
        "lock": str(lock.relative_to(ROOT)),
        "locked": len(pins),
        "python": listed["python"],
        "installed": dict(sorted(have.items())),
        "differences": differences,
    }


def environment_lines(data: dict[str, Any]) -> list[str]:
    """The report's lines on both sides' environments."""
    m, v, envs = data["machine"], data["versions"], data.get("environments")
    tv = f"- tvoice {v['tvoice'].get('tvoice', '?')} (commit {m['tvoice_commit']}), "
    if not envs:  # the raw figures of a run from before the locks (--report-only)
        return [
            tv + f"trio {v['tvoice'].get('trio', '?')}, "
            f"onnxruntime {v['tvoice'].get('onnxruntime', '?')}, "
            f"Python {v['tvoice'].get('python', '?')}",
            f"- livekit-agents {v['livekit'].get('livekit-agents', '?')}, "
            f"onnxruntime {v['livekit'].get('onnxruntime', '?')}, "
            f"Python {v['livekit'].get('python', '?')}",
        ]
    return [
        tv + environment_line("tvoice", envs["tvoice"]),
        "- " + environment_line("livekit", envs["livekit"]),
    ]


def environment_line(side: str, env: dict[str, Any]) -> str:
    """The report's words for one side's environment: the versions that matter, and the lock."""
    have = env["installed"]
    named = ", ".join(f"{n} {have[n]}" for n in NAMED[side] if n in have)
    if env["differences"]:
        shown = "; ".join(env["differences"][:8])
        more = len(env["differences"]) - 8
        check = f"**differs from `{env['lock']}`**: {shown}" + (f" (+{more})" if more > 0 else "")
    else:
        check = f"all {env['locked']} packages as locked in `{env['lock']}`"
    return f"{named}, Python {env['python']}; {check}"


def shown_path(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# -- the previous run's LiveKit figures -------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    """A figure's repetitions as the anchor keeps them: median, min, max and how many."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def moved(now: dict[str, float], before: dict[str, float]) -> bool:
    """Whether a figure's median moved by more than the spread of either run."""
    allowed = max(
        now["max"] - now["min"],
        before["max"] - before["min"],
        ANCHOR_FLOOR * abs(before["median"]),
    )
    return abs(now["median"] - before["median"]) > allowed


def load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def compare(livekit: dict[str, list[float]], anchor: dict[str, Any] | None) -> dict[str, Any]:
    """LiveKit's figures of this run against ``anchor`` (the previous run's): for each figure
    both have, the previous summary and whether it moved."""
    if not anchor:
        return {}
    figures: dict[str, Any] = {}
    for key, values in livekit.items():
        before = anchor["figures"].get(key)
        if values and before:
            figures[key] = {"before": before, "moved": moved(summary(values), before)}
    return figures


def record(data: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """The anchor file for the next run: LiveKit's figures of this run (the figures this run did
    not measure are kept from ``previous``), with what they were measured on."""
    m = data["machine"]
    env = data["environments"]["livekit"]
    figures = dict(previous["figures"]) if previous else {}
    for key, values in data["figures"]["livekit"].items():
        if values:
            figures[key] = {**summary(values), "measured": m["date"]}
    return {
        "measured": m["date"],
        "tvoice_commit": m["tvoice_commit"],
        "machine": {k: m[k] for k in ("cpu_model", "cores", "kernel")},
        "params": data["params"],
        "python": env["python"],
        "installed": env["installed"],
        "figures": figures,
    }


def changes(anchor: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """What LiveKit's side runs on that differs from the anchor's run: packages, Python, machine."""
    out: list[str] = []
    env = data["environments"]["livekit"]
    before, now = anchor.get("installed", {}), env["installed"]
    for name in sorted(set(before) | set(now)):
        if name in before and name in now and before[name] != now[name]:
            out.append(f"{name} {before[name]} → {now[name]}")
        elif name in now and name not in before and anchor.get("installed_complete", True):
            out.append(f"{name} {now[name]} (new)")
        elif name in before and name not in now:
            out.append(f"{name} {before[name]} (gone)")
    if anchor.get("python") and anchor["python"] != env["python"]:
        out.append(f"Python {anchor['python']} → {env['python']}")
    for key, label in (("cpu_model", "CPU"), ("cores", "cores"), ("kernel", "kernel")):
        was, is_ = anchor.get("machine", {}).get(key), data["machine"][key]
        if was is not None and was != is_:
            out.append(f"{label} {was} → {is_}")
    return out


def cell_of(s: dict[str, float], fmt: str) -> str:
    """A summary as the report's cells show figures: median [min–max]."""
    if s["min"] == s["max"]:
        return format(s["median"], fmt)
    return f"{format(s['median'], fmt)} [{format(s['min'], fmt)}–{format(s['max'], fmt)}]"


def section(data: dict[str, Any], rows: dict[str, tuple[str, str]]) -> list[str]:
    """The report's paragraph on the anchor, under the table (``rows``: key -> label, format)."""
    anchor = data.get("anchor") or {}
    before = anchor.get("previous")
    if not before:
        return [
            "",
            "LiveKit's figures have no previous run to be compared with "
            f"(no `{anchor.get('file', 'latest.anchor.json')}`).",
        ]
    compared = anchor.get("compared", {})
    dates = sorted({c["before"].get("measured", before["measured"]) for c in compared.values()})
    when = f"{dates[0]} to {dates[-1]}" if len(dates) > 1 else before["measured"]
    lines = [
        "",
        f"LiveKit's figures beside the previous full run's (`{anchor['file']}`, measured "
        f"{when}" + (f"; {before['source']}" if before.get("source") else "") + "): "
        "a figure whose median moved by more than its spread (min–max across the repetitions of "
        f"either run, and at least {ANCHOR_FLOOR * 100:.0f} % of the previous median) is marked "
        "**moved** and gets no ratio and no verdict: a ratio against a moving anchor is not a "
        "result until the move is explained.",
    ]
    if data["params"].get("quick"):
        lines += [
            "",
            "This was a `--quick` run: its sizes are smaller than those of the full run the anchor "
            "comes from, which alone can move some figures.",
        ]
    moved_keys = [k for k in rows if compared.get(k, {}).get("moved")]
    if moved_keys:
        lines += ["", "Moved:", ""]
        for key in moved_keys:
            label, fmt = rows[key]
            now = summary(data["figures"]["livekit"][key])
            was = compared[key]["before"]
            lines.append(f"- {label.strip(' .…')}: {cell_of(now, fmt)}, was {cell_of(was, fmt)}")
        if data.get("dirty_kept"):
            lines += [
                "",
                f"{len(data['dirty_kept'])} run(s) of this report were kept although other "
                "processes used their core (listed above): a busy core alone moves these "
                "figures (bench/results/onnxruntime.md: a density search ended at 3 that way).",
            ]
    else:
        lines += ["", "None of LiveKit's figures moved."]
    diff = changes(before, data)
    lines += [
        "",
        "LiveKit's side since that run: "
        + ("; ".join(diff) if diff else "the same packages, Python and machine")
        + ".",
    ]
    return lines
