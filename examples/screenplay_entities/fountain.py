"""A screenplay parser: Fountain (https://fountain.io/syntax) and the plain text people paste.

    script = parse(text)
    for scene in script.scenes:
        scene.heading, scene.cues, scene.dialogue, scene.action

Every span is in Python ``str`` indices (Unicode code points) into the text given — never into
a normalised copy — so ``text[span.start:span.end] == span.text`` always holds, whatever the
line ends (``\\n``, ``\\r\\n``, ``\\r``), accents or emoji.

What it reads, line by line (leading indentation is ignored, as Fountain says):

- a **title page** (``Title:``, ``Author:``... key lines at the very top, up to a blank line);
- **scene headings**: ``INT.``, ``EXT.``, ``EST.``, ``INT./EXT.``, ``INT/EXT``, ``I/E`` (any
  case), after an upper-case lead-in (``FLASHBACK - EXT. AIRFIELD - DAY``), a forced
  ``.HEADING``, a trailing scene number ``#12A#``; split into place and time on the last
  `` - `` (or an en/em dash), or a last ``, `` before a time of day: ``INT. HOUSE - KITCHEN -
  NIGHT`` → ``HOUSE - KITCHEN``, ``NIGHT``; a parenthesis after the time is not part of it
  (``DAY (1943)`` → ``DAY``);
- **character cues**: a line with no lower-case letter after a blank line and followed by text,
  or forced with ``@`` (``@McCLANE``); extensions in parentheses (``(CONT'D)``, ``(V.O.)``,
  ``(O.S.)``, ``(O.C.)``, any case); ``^`` at the end for dual dialogue (both cues of the pair are
  marked ``dual``); a joint cue (``BENEDEK & PRIYANKA``) is a cue per name; and, for plain
  text, ``NAME: what they say`` or ``NAME - what they say`` on one line (not ``SOUND:``,
  ``MUSIC:``, ``NOTE:``...);
- **dialogue** and **parentheticals** after a cue, up to a blank line (a line of two spaces
  keeps the block going);
- **transitions** (an upper-case line ending in ``TO:``, or forced ``>``), **centred** text
  ``>...<``, forced **action** ``!``, **lyrics** ``~`` (kept as action), **sections** ``#``,
  **synopses** ``=``, **page breaks** ``===``, **notes** ``[[...]]`` and **boneyard** ``/* */``
  (both may span lines; what they hide is neither action nor dialogue);
- everything else is **action**.

Scenes partition the text: a scene runs from its heading's line to the next heading's. Text
before the first heading (a title page, a plain-text paragraph, a scene pasted without its
heading) is scene 0 with ``heading None``; if there is nothing but blank space before the first
heading, the first heading's scene is scene 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Cue", "Heading", "Scene", "Script", "Span", "parse"]

_BLANK = " \t\ufeff\u00a0"
_NEWLINE = re.compile(r"\r\n|\r|\n")
_HIDDEN = re.compile(r"/\*.*?(?:\*/|\Z)|\[\[.*?(?:\]\]|\Z)", re.S)
_HEADING = re.compile(
    # an upper-case lead-in may come first: "FLASHBACK - EXT. AIRFIELD - DAY"
    r"(?:[A-Z][A-Z ]{0,30}?\s+[-–—]+\s+)?"
    r"(?P<prefix>(?i:int\.?\s*/\s*ext|int/ext|i\s*/\s*e|int|ext|est))(?:\.\s*|\s+)(?=\S)"
)
_SCENE_NUMBER = re.compile(r"\s*#[\w.\-]+#\s*$")
_TIME_SPLIT = re.compile(r"\s+[-–—]+\s+")
#: what may follow a comma as a heading's time ("CAMPSITE, YOSEMITE VALLEY, EARLY MORNING")
_COMMA_TIME = re.compile(
    r",\s+((?:early |late |high )?(?:day|night|morning|evening|afternoon|dawn|dusk|noon|"
    r"midnight|sunrise|sunset|twilight|continuous|later|moments later|same))\s*$",
    re.I,
)
#: "NAME: words" or "NAME - words" on one line are not cues when NAME is one of these
_NOT_SPEAKERS = {
    "SOUND", "SFX", "FX", "MUSIC", "NOTE", "NOTES", "SUPER", "TITLE", "CAPTION", "CUT", "FADE",
    "INSERT", "CHYRON", "SETTING", "TIME", "PLACE", "SCENE", "ACT", "AT RISE", "PS", "RE",
}  # fmt: skip
_EXTENSION = re.compile(r"\s*\(([^()]*)\)")
_TITLE_KEY = re.compile(
    r"(title|credit|authors?|source|draft date|date|contact|copyright|notes|revision)\s*:",
    re.I,
)
_COLON_CUE = re.compile(
    r"(?P<name>[^\W\d_][^\s:a-z]*(?:[ \t]+(?![-–—][ \t])[^\s:a-z]+){0,3})"
    r"(?:[ \t]*:[ \t]*|[ \t]+[-–—][ \t]+)(?=\S)"
)


@dataclass(frozen=True)
class Span:
    """A stretch of the original text: ``text == original[start:end]``."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Heading:
    """A scene heading. ``int_ext`` is ``INT``, ``EXT``, ``EST``, ``INT/EXT`` or ``None`` for a
    forced heading; ``place`` and ``time`` are the parts around the last dash (either may be
    absent). ``text`` is the heading without a forcing ``.`` or a scene number."""

    text: str
    start: int
    end: int
    int_ext: str | None
    place: Span | None
    time: Span | None
    number: str | None = None


@dataclass(frozen=True)
class Cue:
    """A character cue. ``name`` is normalised (upper case, single spaces, no ``@``,
    extension or ``^``); ``start``/``end`` cover the name as written."""

    name: str
    start: int
    end: int
    extension: str | None = None
    dual: bool = False


@dataclass
class Scene:
    """One scene: ``[start, end)`` of the text, its heading (``None`` for text before the
    first heading), the cues, dialogue, parenthetical, action and transition lines in it."""

    index: int
    start: int
    end: int
    heading: Heading | None = None
    cues: list[Cue] = field(default_factory=list)
    dialogue: list[Span] = field(default_factory=list)
    parentheticals: list[Span] = field(default_factory=list)
    action: list[Span] = field(default_factory=list)
    transitions: list[Span] = field(default_factory=list)

    @property
    def characters(self) -> list[str]:
        """The names that speak in the scene, in order of their first cue."""
        return list(dict.fromkeys(cue.name for cue in self.cues))

    def to_json(self) -> dict[str, Any]:
        """The service's per-scene structure."""
        h = self.heading
        return {
            "index": self.index,
            "start": self.start,
            "end": self.end,
            "heading": h.text if h else None,
            "int_ext": h.int_ext if h else None,
            "place": h.place.text if h and h.place else None,
            "time": h.time.text if h and h.time else None,
            "characters": self.characters,
        }


@dataclass
class Script:
    """A parsed screenplay: its scenes in order, and the title page's fields."""

    text: str
    scenes: list[Scene]
    title_page: dict[str, str] = field(default_factory=dict)
    hidden: list[tuple[int, int]] = field(default_factory=list)

    def scene_at(self, offset: int) -> int | None:
        """The index of the scene holding ``offset`` (``None`` before the first scene)."""
        found = None
        for scene in self.scenes:
            if scene.start <= offset:
                found = scene.index
            else:
                break
        return found

    @property
    def cues(self) -> list[Cue]:
        return [cue for scene in self.scenes for cue in scene.cues]


@dataclass
class _Line:
    start: int  # of the content, leading indentation skipped
    end: int  # of the content, trailing blanks skipped
    line_start: int
    text: str  # the content as written (from the masked text: hidden parts are spaces)
    skip: bool = False  # a line only a note or boneyard filled: neither blank nor content

    @property
    def blank(self) -> bool:
        return not self.text and not self.skip


def _lines(masked: str, original: str) -> list[_Line]:
    out: list[_Line] = []
    pos = 0
    n = len(masked)
    while pos <= n:
        m = _NEWLINE.search(masked, pos)
        stop = m.start() if m else n
        raw = masked[pos:stop]
        content = raw.strip(_BLANK)
        lead = len(raw) - len(raw.lstrip(_BLANK))
        start = pos + lead
        had_text = bool(original[pos:stop].strip(_BLANK + "\r\n"))
        out.append(_Line(start, start + len(content), pos, content, skip=not content and had_text))
        if m is None:
            break
        pos = m.end()
    return out


def _mask(text: str) -> tuple[str, list[tuple[int, int]]]:
    """Notes and boneyard blanked out (line ends kept), so offsets stay those of the text."""
    hidden = [(m.start(), m.end()) for m in _HIDDEN.finditer(text)]
    if not hidden:
        return text, hidden
    chars = list(text)
    for a, b in hidden:
        for i in range(a, b):
            if chars[i] not in "\r\n":
                chars[i] = " "
    return "".join(chars), hidden


def _no_lower(s: str) -> bool:
    """Some cased letter and no lower-case one (a script without letter case, such as
    Japanese, has no capitals to mark a cue)."""
    return s.upper() == s and s.lower() != s


def _heading(line: _Line, original: str) -> Heading | None:
    text = line.text
    forced = text.startswith(".") and len(text) > 1 and text[1] not in ". "
    int_ext: str | None = None
    if forced:
        body_start = line.start + 1
    else:
        m = _HEADING.match(text)
        if m is None:
            return None
        prefix = re.sub(r"[\s.]", "", m.group("prefix")).upper()
        int_ext = {"I/E": "INT/EXT", "INTEXT": "INT/EXT"}.get(prefix, prefix)
        body_start = line.start + m.end()
    body_end = line.end
    number = None
    num = _SCENE_NUMBER.search(original, body_start, body_end)
    if num is not None:
        number = num.group().strip(" \t#")
        body_end = num.start()
    head_start = line.start + 1 if forced else line.start
    heading_text = original[head_start:body_end].rstrip(_BLANK)
    body = original[body_start:body_end]
    place: Span | None = None
    time: Span | None = None
    splits = list(_TIME_SPLIT.finditer(body))
    comma = _COMMA_TIME.search(body)
    if splits or comma:
        if comma is not None:
            place_end, time_start = body_start + comma.start(), body_start + comma.start(1)
        else:
            place_end = body_start + splits[-1].start()
            time_start = body_start + splits[-1].end()
        time_text = original[time_start:body_end].rstrip(_BLANK)
        # a year or note after the time is not the time of day: "DAY (1943)"
        time_text = re.sub(r"\s*\([^()]*\)$", "", time_text)
        time = Span(time_start, time_start + len(time_text), time_text) if time_text else None
    else:
        place_end = body_end
    place_text = original[body_start:place_end].rstrip(_BLANK)
    if place_text:
        place = Span(body_start, body_start + len(place_text), place_text)
    return Heading(
        heading_text, head_start, head_start + len(heading_text), int_ext, place, time, number
    )


def _cue(line: _Line, original: str) -> list[Cue] | None:
    """A cue line's names, extension and dual mark, or ``None`` if the line is not one."""
    text = line.text
    forced = text.startswith("@")
    body = text[1:] if forced else text
    dual = body.rstrip(_BLANK).endswith("^")
    if dual:
        body = body.rstrip(_BLANK)[:-1]
    first_paren = body.find("(")
    name = (body if first_paren < 0 else body[:first_paren]).rstrip(_BLANK)
    rest = "" if first_paren < 0 else body[first_paren:]
    extensions = _EXTENSION.findall(rest)
    if rest and _EXTENSION.sub("", rest).strip(_BLANK):
        return None  # something after the extensions: not a cue
    if not name or not any(c.isalpha() for c in name):
        return None
    if not forced and (not _no_lower(name) or name.endswith(":")):
        return None
    start = line.start + (1 if forced else 0)
    extension = ", ".join(e.strip() for e in extensions) or None
    return _names(original, start, start + len(name), extension, dual)


def _names(
    original: str, start: int, end: int, extension: str | None = None, dual: bool = False
) -> list[Cue]:
    """The cue(s) of a name: a joint cue ("BENEDEK & PRIYANKA") is one per speaker."""
    cues = []
    pos = start
    for part in re.split(r"(\s*&\s*|\s+AND\s+|\s*/\s*)", original[start:end]):
        if part and not re.fullmatch(r"\s*&\s*|\s+AND\s+|\s*/\s*", part):
            cues.append(Cue(" ".join(part.upper().split()), pos, pos + len(part), extension, dual))
        pos += len(part)
    return cues


def _is_transition(text: str) -> bool:
    return (text.startswith(">") and not text.endswith("<")) or (
        _no_lower(text) and text.endswith("TO:")
    )


def parse(text: str) -> Script:
    """Parse screenplay text (Fountain or plain) into scenes; see the module docstring."""
    masked, hidden = _mask(text)
    lines = _lines(masked, text)
    script = Script(text, [], hidden=hidden)

    i = 0
    # the title page: key lines at the very top, up to the first blank line
    while i < len(lines) and lines[i].blank:
        i += 1
    if i < len(lines) and _TITLE_KEY.match(lines[i].text):
        key = ""
        while i < len(lines) and not lines[i].blank:
            line = lines[i]
            m = re.match(r"([^:]+):\s*(.*)", line.text)
            if m and line.start == line.line_start:
                key = m.group(1).strip()
                script.title_page[key] = m.group(2)
            elif key:
                script.title_page[key] = (script.title_page[key] + "\n" + line.text).strip()
            i += 1
    title_end = i

    scene: Scene | None = None

    def current() -> Scene:
        nonlocal scene
        if scene is None:
            scene = Scene(len(script.scenes), 0, len(text))
            script.scenes.append(scene)
        return scene

    if any(not ln.blank and not ln.skip for ln in lines[:title_end]):
        current()

    def span(line: _Line, start: int | None = None) -> Span:
        a = line.start if start is None else start
        return Span(a, line.end, text[a : line.end])

    prev_blank = True
    while i < len(lines):
        line = lines[i]
        if line.skip:
            i += 1
            continue
        if line.blank:
            prev_blank = True
            i += 1
            continue
        nxt = next((ln for ln in lines[i + 1 :] if not ln.skip), None)
        next_blank = nxt is None or nxt.blank
        t = line.text

        # a heading wants a blank line before it, as Fountain says; plain text often has
        # none, so an upper-case INT./EXT. prefix is enough there
        heading = _heading(line, text)
        if heading is not None and (prev_blank or (heading.int_ext and t[:3].isupper())):
            if scene is not None:
                scene.end = line.line_start
            elif line.line_start > 0 and text[: line.line_start].strip(_BLANK + "\r\n"):
                current().end = line.line_start
            scene = Scene(len(script.scenes), line.line_start, len(text), heading)
            script.scenes.append(scene)
            prev_blank = False
            i += 1
            continue

        s = current()
        transition = False
        if re.fullmatch(r"={3,}", t) or t.startswith("#") or (t.startswith("=")):
            pass  # page break, section, synopsis: structure, not text
        elif t.startswith("!"):
            s.action.append(span(line, line.start + 1))
        elif t.startswith("~"):
            s.action.append(span(line, line.start + 1))
        elif t.startswith(">") and t.endswith("<"):
            inner = t[1:-1].strip(_BLANK)
            a = line.start + 1 + (len(t[1:-1]) - len(t[1:-1].lstrip(_BLANK)))
            if inner:
                s.action.append(Span(a, a + len(inner), inner))
        elif prev_blank and (transition := _is_transition(t)) and next_blank:
            a = line.start + 1 if t.startswith(">") else line.start
            a += len(text[a : line.end]) - len(text[a : line.end].lstrip(_BLANK))
            s.transitions.append(span(line, a))
        elif (
            prev_blank
            and not next_blank
            and not transition
            and (cues := _cue(line, text)) is not None
        ):
            if cues[0].dual and s.cues:
                prior = s.cues[-1]
                s.cues[-1] = Cue(prior.name, prior.start, prior.end, prior.extension, True)
            s.cues.extend(cues)
            i = _dialogue(lines, i + 1, s, text)
            prev_blank = False
            continue
        elif (
            (m := _COLON_CUE.match(t))
            and _no_lower(m.group("name"))
            and " ".join(m.group("name").split()) not in _NOT_SPEAKERS
            # "RADIO PLAY - "SEVEN MINUTES"": a dash before more capitals is a title
            and (":" in t[: m.end()] or not _no_lower(t[m.end() :]))
        ):
            name = m.group("name")
            s.cues.extend(_names(text, line.start, line.start + len(name)))
            s.dialogue.append(span(line, line.start + m.end()))
        else:
            s.action.append(span(line))
        prev_blank = False
        i += 1
    return script


def _dialogue(lines: list[_Line], i: int, scene: Scene, text: str) -> int:
    """Read the dialogue block after a cue; returns the index of the first line after it."""
    while i < len(lines):
        line = lines[i]
        if line.skip:
            i += 1
            continue
        if line.blank:
            raw = text[line.line_start : line.start]
            if raw.replace("\t", "  ").count(" ") >= 2 and i + 1 < len(lines):
                i += 1  # a line of two spaces keeps the block going (Fountain)
                continue
            break
        t = line.text
        sp = Span(line.start, line.end, text[line.start : line.end])
        if t.startswith("(") and t.endswith(")"):
            scene.parentheticals.append(sp)
        else:
            if t.startswith("~"):
                sp = Span(line.start + 1, line.end, text[line.start + 1 : line.end])
            scene.dialogue.append(sp)
        i += 1
    return i
