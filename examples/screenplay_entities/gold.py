"""The hand-written gold set: screenplay scenes (and a few whole short scripts) with their
entities, never used for training.

Each file in ``gold/`` is one input as a caller would send it (``.fountain`` or ``.txt`` for
text that is not Fountain), with its entities marked inline as ``{surface text|LABEL}``. The
loader strips the marks and computes the offsets, so nobody writes an offset by hand:

    {ODALYS|CHARACTER}
    You said {Tulsa|LOCATION}. This isn't {Tulsa|LOCATION}.

``gold/README.md`` states the annotation conventions (what each label covers, what is left
unmarked).

    python examples/screenplay_entities/gold.py            # counts per label, per file
    python examples/screenplay_entities/gold.py --heldout  # the same for gold/heldout/
    python examples/screenplay_entities/gold.py --probe    # ... and for gold/probe/
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

GOLD_DIR = Path(__file__).resolve().parent / "gold"
#: the second, held-out set: written before the last changes to the generator and the rules,
#: never looked at while tuning them (gold/heldout/README.md)
HELDOUT_DIR = GOLD_DIR / "heldout"
#: a few inputs written to develop changes against (gold/probe/README.md), so that the
#: held-out set stays unlooked-at; never trained on, not scored by the flow
PROBE_DIR = GOLD_DIR / "probe"
LABELS = ("CHARACTER", "PERSON", "LOCATION", "ORG", "TIME")
SUFFIXES = (".fountain", ".txt")

_MARK = re.compile(r"\{([^{}|\n]+)\|([A-Za-z]+)\}")


class GoldError(ValueError):
    """A gold file's markup is malformed: names the file, the line and what is wrong."""


@dataclass(frozen=True)
class GoldSpan:
    label: str
    start: int
    end: int


@dataclass(frozen=True)
class GoldScene:
    """One gold input: its name (the file's stem), the text with the marks stripped, and its
    entities as (label, start, end) in ``str`` indices into ``text``."""

    name: str
    text: str
    spans: tuple[GoldSpan, ...]
    fountain: bool

    def surfaces(self) -> list[tuple[str, str]]:
        """(label, text) of every span, in order."""
        return [(s.label, self.text[s.start : s.end]) for s in self.spans]


def parse(marked: str, *, name: str = "<text>", fountain: bool = True) -> GoldScene:
    """Strip ``{text|LABEL}`` marks from ``marked``; the spans point into what is left."""
    out: list[str] = []
    spans: list[GoldSpan] = []
    pos = 0
    length = 0
    for m in _MARK.finditer(marked):
        before = marked[pos : m.start()]
        _check_plain(before, marked, pos, name)
        out.append(before)
        length += len(before)
        surface, label = m.group(1), m.group(2)
        where = f"{name}:{marked.count(chr(10), 0, m.start()) + 1}"
        if label not in LABELS:
            raise GoldError(f"{where}: unknown label {label!r} in {m.group(0)!r}; use {LABELS}")
        if surface != surface.strip():
            raise GoldError(f"{where}: {m.group(0)!r} has spaces inside the braces")
        spans.append(GoldSpan(label, length, length + len(surface)))
        out.append(surface)
        length += len(surface)
        pos = m.end()
    _check_plain(marked[pos:], marked, pos, name)
    out.append(marked[pos:])
    return GoldScene(name=name, text="".join(out), spans=tuple(spans), fountain=fountain)


def _check_plain(chunk: str, marked: str, offset: int, name: str) -> None:
    for i, ch in enumerate(chunk):
        if ch in "{}":
            line = marked.count("\n", 0, offset + i) + 1
            raise GoldError(f"{name}:{line}: stray {ch!r}; a mark is {{text|LABEL}} on one line")


def load(folder: Path = GOLD_DIR) -> list[GoldScene]:
    """Every gold file in ``folder``, sorted by name."""
    scenes = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in SUFFIXES:
            continue
        scenes.append(
            parse(
                path.read_text(encoding="utf-8"),
                name=path.stem,
                fountain=path.suffix == ".fountain",
            )
        )
    if not scenes:
        raise GoldError(f"no gold files ({', '.join(SUFFIXES)}) in {folder}")
    return scenes


def main() -> None:
    args = sys.argv[1:]
    folder = HELDOUT_DIR if "--heldout" in args else PROBE_DIR if "--probe" in args else GOLD_DIR
    scenes = load(folder)
    total: Counter[str] = Counter()
    for scene in scenes:
        counts = Counter(s.label for s in scene.spans)
        total += counts
        print(f"{scene.name:32} " + " ".join(f"{k}={counts[k]}" for k in LABELS))
    print(f"{len(scenes)} inputs; " + ", ".join(f"{k} {total[k]}" for k in LABELS))


if __name__ == "__main__":
    sys.exit(main())
