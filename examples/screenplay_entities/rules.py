"""Structural entities: what the screenplay's own form says, without a model.

    script = fountain.parse(text)
    entities = structural(script, text)

- ``CHARACTER`` for every cue's name, and for every other mention of a cued name anywhere in
  the text (action, dialogue, parentheticals), matched as whole words:

  - the full name in **any case** (``MARIA``, ``Maria``, ``maria``), except right after
    ``the``/``a``/``an`` — a cue like ``WAITRESS`` or ``COP`` names a role, and "the waitress"
    in action is not a name;
  - each word of a multi-word cue alone (``JOHN SMITH`` → ``John``, ``Smith``) when it is at
    least two letters long and is not a title or a common word (``MR``, ``DR``, ``OLD``,
    ``MAN``...): in any case for the first word (a first name: ``john``), capitalised or in
    capitals for the others (``smith`` in lower case is more likely a trade than a name);
  - a name that is also a common English word (``WILL``, ``MAY``, ``HOPE``, ``ROSE``...) only
    when it is capitalised: "I will go" does not mention WILL.

  - the full name written around a cued name (``ODALYS QUELL`` for a cue ``ODALYS``, ``JUDAH
    QUELL`` for ``QUELL``: up to two words after it in the same style, and in capitals before
    it too; never in a line all in capitals, where capitals set nothing apart), then that
    full name and its words wherever they occur (``Quell``, ``Judah``).

  Cues with a digit or ``#`` (``COP #1``, ``GUARD 2``) are labels, not names: their cue is a
  ``CHARACTER`` but their other mentions are not searched.
- ``LOCATION`` for a heading's place — of a forced heading too (``.KITCHEN - NIGHT``), unless it
  names a device rather than a place (``.FLASHBACK - 1985``, ``.MONTAGE``, ``.INTERCUT``...).
- ``TIME`` for a heading's time when it is a time of day or a date (``NIGHT``, ``DAWN``,
  ``LATE AFTERNOON``, ``1985``) — not a continuity word (``CONTINUOUS``, ``LATER``,
  ``MOMENTS LATER``, ``SAME``) — and for explicit times in action lines (``3 a.m.``, ``10:30``,
  ``half past nine``, ``noon``, ``midnight``, ``dawn``...).

Nothing inside a note ``[[...]]`` or the boneyard ``/* */`` is an entity. Spans never overlap;
where two would, the heading's span wins, then a cue, then the longer mention.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fountain import Script

__all__ = ["LABELS", "Entity", "structural"]

LABELS = ("CHARACTER", "PERSON", "LOCATION", "ORG", "TIME")

_TITLES = {
    "MR", "MRS", "MS", "MISS", "DR", "SIR", "LADY", "LORD", "DAME", "AUNT", "UNCLE", "SAINT",
    "ST", "FATHER", "MOTHER", "SISTER", "BROTHER", "OFFICER", "DETECTIVE", "DET", "AGENT",
    "CAPTAIN", "CAPT", "SGT", "SERGEANT", "LT", "LIEUTENANT", "GENERAL", "COLONEL", "MAJOR",
    "PROFESSOR", "PROF", "JUDGE", "NURSE", "DOCTOR", "THE", "A", "AN", "OF", "AND", "DE", "LA",
    "VAN", "VON", "DA", "DI", "DEL", "LE", "EL", "OLD", "YOUNG", "LITTLE", "BIG", "MAN",
    "WOMAN", "BOY", "GIRL", "KID", "GUY", "MAN'S", "VOICE", "JR", "SR", "II", "III",
    "MARSHAL", "SHERIFF", "DEPUTY", "PRESIDENT", "SENATOR", "GOVERNOR", "MAYOR", "CHIEF",
    "COACH", "REVEREND", "REV", "PASTOR", "RABBI", "IMAM", "PRINCE", "PRINCESS", "KING",
    "QUEEN", "DUKE", "DUCHESS", "COUNT", "COUNTESS", "BARON", "CEO", "CFO", "CTO", "INSPECTOR",
    "CONSTABLE", "CORPORAL", "PRIVATE", "ADMIRAL", "COMMANDER", "MADAME", "MONSIEUR", "SEÑOR",
    "SEÑORA", "HERR", "FRAU", "GRANDMA", "GRANDPA", "MOM", "DAD", "MA", "PA",
}  # fmt: skip
_COMMON_WORDS = {
    "WILL", "MAY", "HOPE", "ROSE", "GRACE", "JOY", "JUNE", "APRIL", "AUGUST", "MARK", "BILL",
    "ART", "FAITH", "SUNNY", "PAT", "SUE", "ROB", "RAY", "JACK", "FRANK", "BOB", "DAWN",
    "SUMMER", "AUTUMN", "CHASE", "HUNTER", "GUY", "DON", "MAX", "BUD", "SKY", "GINGER",
    "PENNY", "RUSTY", "LILY", "IVY", "IRIS", "MILES", "WADE", "CLIFF", "DASH", "HONEY",
    "CHANCE", "CHRISTIAN", "AMBER", "RUBY", "PEARL", "HAZEL", "VIOLET", "HEATHER", "HOLLY",
    "ROBIN", "SANDY", "STORM", "RAIN", "RIVER", "ANGEL", "BRANDY", "CANDY", "MISTY", "BUCK",
    "DEAN", "DREW", "GRANT", "HERB", "NICK", "NORM", "PIERCE", "REED", "ROCK", "ROD", "SAGE",
}  # fmt: skip
_NOT_PLACES = re.compile(
    r"(flashback|flash forward|montage|series of shots|intercut|back to|dream|title|"
    r"super|insert|pov|black|white|fade|later|end|credits|opening|closing)\b",
    re.I,
)
_TIMES_OF_DAY = re.compile(
    r"(early |late |high |mid-?)?(day|night|morning|evening|afternoon|dawn|dusk|noon|midnight|"
    r"sunrise|sunset|twilight|daybreak|nightfall|magic hour|golden hour|predawn|pre-dawn)"
    r"( cycle| shift)?( \(.*\))?|.*\d.*",
    re.I,
)
_WORD = r"(?<![\w'’])"
_END = r"(?![\w])"
_NUMBER_WORD = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_CLOCK = re.compile(
    _WORD
    + r"(?:"
    + r"\d{1,2}:\d{2}(?::\d{2})?(?:\s?(?:[ap]\.m\.|[ap]m)(?![\w]))?"
    + r"|\d{1,2}\s?(?:[ap]\.m\.|[ap]m(?![\w]))"
    + r"|(?:\d{1,2}|" + _NUMBER_WORD + r") o'clock" + _END
    + r"|(?:half|quarter) (?:past|to) (?:\d{1,2}|" + _NUMBER_WORD + r")" + _END
    + r"|(?:noon|midday|midnight|dawn|dusk|sunrise|sunset|daybreak|nightfall)" + _END
    + r")",
    re.I,
)  # fmt: skip


@dataclass(frozen=True)
class Entity:
    """One entity: ``text == input[start:end]``; ``scene`` is the scene's index."""

    label: str
    text: str
    start: int
    end: int
    scene: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "scene": self.scene,
        }


def _name_patterns(
    names: Iterable[str],
) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None, set[str]]:
    """(full names, parts of multi-word names, the names and parts that may be lower case)."""
    full: set[str] = set()
    parts: set[str] = set()
    any_case: set[str] = set()
    for name in names:
        if any(c.isdigit() for c in name) or "#" in name:
            continue
        full.add(name)
        if name not in _COMMON_WORDS:
            any_case.add(name)
        words = name.split()
        if len(words) > 1:
            for n, word in enumerate(words):
                bare = word.strip(".,'’")
                if sum(c.isalpha() for c in bare) >= 2 and bare.upper() not in _TITLES:
                    parts.add(bare)
                    if n == 0 and bare not in _COMMON_WORDS:
                        any_case.add(bare)

    def alternation(items: set[str]) -> str:
        # longest first, so "JOHN SMITH" is tried before "JOHN"
        return "|".join(
            r"\s+".join(re.escape(w) for w in item.split())
            for item in sorted(items, key=len, reverse=True)
        )

    full_re = re.compile(rf"{_WORD}(?:{alternation(full)}){_END}", re.I) if full else None
    parts_re = re.compile(rf"{_WORD}(?:{alternation(parts)}){_END}", re.I) if parts else None
    return full_re, parts_re, any_case


def _written_as_name(found: str, any_case: set[str]) -> bool:
    """A match counts if it is capitalised, or if its name may be written in lower case."""
    if found[:1].isupper():
        return True
    return " ".join(found.upper().split()) in any_case


_TOKEN = r"[^\W\d_][\w'’\-]*"
_NEXT = re.compile(rf"[ ]({_TOKEN})(?![\w])")
_PREVIOUS = re.compile(rf"(?<![\w'’\-])({_TOKEN})[ ]$")


def _same_style(word: str, upper: bool) -> bool:
    letters = [c for c in word if c.isalpha()]
    if len(letters) < 2 or word.upper().strip("'’-") in _TITLES:
        return False
    if upper:
        return not any(c.islower() for c in letters)
    return letters[0].isupper() and any(c.islower() for c in letters[1:])


def _widened(text: str, start: int, end: int, names: set[str]) -> tuple[int, int]:
    """A cued name's mention with the rest of the full name written around it: the words
    after it in the same style (``Maria Santos``, ``ODALYS QUELL``), and in capitals the
    words before it too (``JUDAH QUELL`` for a cue ``QUELL``: a character's introduction).
    At most two words each side, never another cued name."""
    found = text[start:end]
    upper = not any(c.islower() for c in found)
    if not upper and not _same_style(found.split()[0], False):
        return start, end  # a lower-case mention: nothing to widen
    if upper and not _has_lower(text, start, end):
        return start, end  # a line all in capitals ("FENELLA AND MCGUIRE WATCH"): no sign
    for _ in range(2):
        m = _NEXT.match(text, end)
        if m is None or not _same_style(m.group(1), upper) or m.group(1).upper() in names:
            break
        end = m.end()
    if upper:
        for _ in range(2):
            m = _PREVIOUS.search(text, max(0, start - 40), start)
            if m is None or not _same_style(m.group(1), upper) or m.group(1).upper() in names:
                break
            start = m.start()
    return start, end


def _has_lower(text: str, start: int, end: int) -> bool:
    """Whether the line holding ``text[start:end]`` has a lower-case letter: only then do
    capitals set a name apart (an introduction, ``Dispatcher ROSALIND ACHEBE (50s)``)."""
    a = max(text.rfind("\n", 0, start), text.rfind("\r", 0, start)) + 1
    b = min((i for i in (text.find("\n", end), text.find("\r", end)) if i >= 0), default=len(text))
    return any(c.islower() for c in text[a:b])


_ARTICLE = re.compile(r"(?:^|[^\w])(?:the|an?)\s+$", re.I)


def _after_article(text: str, start: int) -> bool:
    return _ARTICLE.search(text[max(0, start - 5) : start]) is not None


def structural(script: Script, text: str) -> list[Entity]:
    """The structural entities of ``text`` (which ``script`` was parsed from), sorted by
    offset; see the module docstring."""
    taken = bytearray(len(text))  # 1 where a span (or a note, or a heading) already is
    out: list[Entity] = []

    def take(a: int, b: int) -> None:
        taken[a:b] = b"\x01" * (b - a)

    def free(a: int, b: int) -> bool:
        return taken.find(1, a, b) == -1

    def add(label: str, a: int, b: int, scene: int | None) -> None:
        if a < b and free(a, b):
            take(a, b)
            out.append(Entity(label, text[a:b], a, b, scene))

    for a, b in script.hidden:
        take(a, b)

    # 1. headings: place and time; the whole heading is off limits to mentions
    for scene in script.scenes:
        h = scene.heading
        if h is None:
            continue
        if h.place is not None and (h.int_ext or not _NOT_PLACES.match(h.place.text)):
            add("LOCATION", h.place.start, h.place.end, scene.index)
        if h.time is not None and _TIMES_OF_DAY.fullmatch(h.time.text.strip()):
            add("TIME", h.time.start, h.time.end, scene.index)
        take(h.start, h.end)
    # 2. cues
    for scene in script.scenes:
        for cue in scene.cues:
            add("CHARACTER", cue.start, cue.end, scene.index)
    # 3. mentions of cued names, full names first, then capitalised parts
    names = {cue.name for cue in script.cues}
    full_re, _, _ = _name_patterns(names)
    if full_re is not None:  # a cued name written out in full somewhere: "ODALYS QUELL"
        names |= {
            " ".join(text[a:b].upper().split())
            for m in full_re.finditer(text)
            for a, b in [_widened(text, m.start(), m.end(), names)]
            if (a, b) != m.span() and free(a, b)
        }
    full_re, parts_re, any_case = _name_patterns(names)
    for pattern in (full_re, parts_re):
        if pattern is None:
            continue
        for m in pattern.finditer(text):
            if _written_as_name(m.group(), any_case) and not _after_article(text, m.start()):
                add("CHARACTER", m.start(), m.end(), script.scene_at(m.start()))
    # 4. explicit times in action lines
    for scene in script.scenes:
        for line in scene.action:
            for m in _CLOCK.finditer(text, line.start, line.end):
                add("TIME", m.start(), m.end(), scene.index)
    out.sort(key=lambda e: (e.start, e.end))
    return out
