"""Writing ``bench/results/latest.md`` without losing the sections other benches keep in it.

``run.py`` writes the whole file; a bench that adds a section of its own puts it between two
marker lines, ``<!-- name -->`` and ``<!-- /name -->`` (``bench_offline.py --write``,
``chaos.py``). Rewriting the file keeps each marked section, in its order, after the report.
"""

from __future__ import annotations

import re
from pathlib import Path

_OPENING = re.compile(r"<!-- ([\w-]+) -->")


def kept_sections(text: str) -> list[str]:
    """The marked sections of ``text``, markers included, in their order."""
    lines = text.splitlines()
    sections: list[str] = []
    i = 0
    while i < len(lines):
        opening = _OPENING.fullmatch(lines[i].strip())
        closing = f"<!-- /{opening.group(1)} -->" if opening else None
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == closing), None)
        if end is None:
            i += 1
            continue
        sections.append("\n".join(lines[i : end + 1]))
        i = end + 1
    return sections


def write_keeping(out: Path, report: str) -> str:
    """Write ``report`` to ``out``, followed by the marked sections the old file had; return
    what was written."""
    try:
        kept = kept_sections(out.read_text())
    except OSError:
        kept = []
    text = "\n\n".join([report.rstrip("\n"), *kept]) + "\n"
    out.write_text(text)
    return text


def write_section(out: Path, name: str, body: str) -> None:
    """Put ``body`` into ``out`` between ``<!-- name -->`` and ``<!-- /name -->``, in place
    of what was there (appended the first time); the rest of the file is left as it is."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    section = f"{start}\n{body.strip()}\n{end}"
    old = out.read_text() if out.exists() else ""
    if start in old and end in old:
        before, rest = old.split(start, 1)
        new = before + section + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + section + "\n"
    out.write_text(new)
