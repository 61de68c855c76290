"""Screenplay entities as a service: the characters, people, places, organisations and times in
a scene or a whole script, Fountain or plain text, with each scene's heading and speakers.

    shipyard deploy examples/screenplay_entities/service.py:Entities --name entities
    curl -H 'content-type: application/json' localhost:8000/entities/extract \\
         -d '{"text": "INT. DINER - NIGHT\\n\\nMARIA\\nWhere is Tom?\\n"}'

``POST /entities/extract {"text": str}`` → ``{"entities": [{"label", "text", "start", "end",
"scene"}], "scenes": [{"index", "start", "end", "heading", "int_ext", "place", "time",
"characters"}]}``; ``POST /entities/extract_batch {"texts": [str]}`` → ``{"results": [...]}``,
one answer per text in order, run through spaCy's ``nlp.pipe`` together (the way to send many
scenes, or a script longer than one call takes).

Offsets are Python ``str`` indices (Unicode code points) into the text sent: ``text ==
input[start:end]``, whatever the line ends, accents or emoji. Labels: ``CHARACTER`` (a name
with a dialogue cue in the text, wherever it is mentioned), ``PERSON`` (a named person
without a cue), ``LOCATION``, ``ORG``, ``TIME``. ``scene`` is the index of the scene an entity
is in (text before the first heading is scene 0, with ``heading`` null).

Every answer is checked by the host against the text it answers (an output contract): offsets
inside the text, each entity's text the slice it names, labels from the declared set, scenes in
order and covering the text. A broken answer is a 500 ``contract_violation``, never a silently
wrong answer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal, get_args

from typing_extensions import TypedDict

from shipyard import HTTPError
from shipyard.registry import Model
from shipyard.serve import Service, endpoint

# nothing here may look anything up on a hub: the pipeline loads from the registered files
os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from pipeline import Extractor  # noqa: E402
from rules import LABELS  # noqa: E402

MODEL = "screenplay-ner"
#: characters in one text: a feature script (~120 pages) is about 180,000
MAX_CHARS = 300_000
#: texts in one batch call, and their characters together
MAX_TEXTS = 512
MAX_BATCH_CHARS = 1_000_000
#: texts nlp.pipe takes at a time
PIPE_BATCH = 32

Label = Literal["CHARACTER", "PERSON", "LOCATION", "ORG", "TIME"]
assert get_args(Label) == LABELS  # the declared set, in one place each


class EntityJSON(TypedDict):
    label: Label
    text: str
    start: int
    end: int
    scene: int | None


class SceneJSON(TypedDict):
    index: int
    start: int
    end: int
    heading: str | None
    int_ext: str | None
    place: str | None
    time: str | None
    characters: list[str]


class Extraction(TypedDict):
    entities: list[EntityJSON]
    scenes: list[SceneJSON]


class Extractions(TypedDict):
    results: list[Extraction]


class ContractBroken(ValueError):
    """An answer that does not hold for the text it answers."""


def check_extraction(answer: Any, text: str) -> None:
    """Raise ``ContractBroken`` naming the first thing in ``answer`` that does not hold for
    ``text``: entity offsets and slices, labels, scene indices, scenes covering the text."""
    n = len(text)
    scenes = answer["scenes"]
    at = 0
    for i, scene in enumerate(scenes):
        if scene["index"] != i:
            raise ContractBroken(f"scenes[{i}] has index {scene['index']}, not {i}")
        if not at <= scene["start"] <= scene["end"] <= n:
            raise ContractBroken(
                f"scenes[{i}] spans {scene['start']}-{scene['end']}: outside the text "
                f"(0-{n}) or before the scene ahead of it (which ends at {at})"
            )
        at = scene["end"]
    for i, e in enumerate(answer["entities"]):
        start, end, label = e["start"], e["end"], e["label"]
        if label not in LABELS:
            raise ContractBroken(f"entities[{i}] has label {label!r}, not one of {LABELS}")
        if not 0 <= start < end <= n:
            raise ContractBroken(f"entities[{i}] spans {start}-{end}: outside the text (0-{n})")
        if text[start:end] != e["text"]:
            raise ContractBroken(
                f"entities[{i}] says {e['text']!r} but the text at {start}-{end} is "
                f"{text[start:end]!r}"
            )
        scene = e["scene"]
        if scene is not None:
            if not 0 <= scene < len(scenes):
                raise ContractBroken(f"entities[{i}] is in scene {scene}, which is not one")
            s = scenes[scene]
            if not s["start"] <= start < s["end"]:
                raise ContractBroken(
                    f"entities[{i}] at {start} is not inside scene {scene} "
                    f"({s['start']}-{s['end']})"
                )


def extraction_holds(answer: Any, request: dict[str, Any]) -> bool:
    """The output contract of ``/extract``."""
    check_extraction(answer, request["text"])
    return True


def extractions_hold(answer: Any, request: dict[str, Any]) -> bool:
    """The output contract of ``/extract_batch``: one answer per text, each holding."""
    texts, results = request["texts"], answer["results"]
    if len(results) != len(texts):
        raise ContractBroken(f"{len(results)} results for {len(texts)} texts")
    for i, (result, text) in enumerate(zip(results, texts, strict=True)):
        try:
            check_extraction(result, text)
        except ContractBroken as exc:
            raise ContractBroken(f"results[{i}]: {exc}") from None
    return True


def _too_long(field: str, n: int) -> HTTPError:
    return HTTPError(
        422,
        f"`{field}` has {n:,} characters; one text may have at most {MAX_CHARS:,}: send a "
        "longer script as its scenes, in one call to /entities/extract_batch",
        field=field,
    )


class Entities(Service):
    """Entities and scene structure of screenplays, from the latest ``screenplay-ner``."""

    def load(self) -> None:
        model = Model(MODEL)  # the latest, or the version `deploy --model` pinned
        self.version = model.resolve()
        self.extractor = Extractor.load(model.load().path)
        self.extractor.extract("INT. DINER - NIGHT\n\nMARIA\nWarm up, Tom.\n")  # first call

    @endpoint(contract=extraction_holds)
    def extract(self, text: str) -> Extraction:
        """The entities of one text (a scene or a whole script, Fountain or plain) and its
        scenes: heading, place, time and the characters who speak."""
        if len(text) > MAX_CHARS:
            raise _too_long("text", len(text))
        return self.extractor.extract(text)  # type: ignore[no-any-return]

    @endpoint(contract=extractions_hold)
    def extract_batch(self, texts: list[str]) -> Extractions:
        """``extract`` for many texts at once (run through the model together: the fast way
        for many scenes); one result per text, in order."""
        if not texts:
            raise HTTPError(422, "`texts` is empty: send at least one text", field="texts")
        if len(texts) > MAX_TEXTS:
            raise HTTPError(
                422,
                f"`texts` has {len(texts):,} texts; at most {MAX_TEXTS} a call: "
                "send them in several calls",
                field="texts",
            )
        for i, text in enumerate(texts):
            if len(text) > MAX_CHARS:
                raise _too_long(f"texts.{i}", len(text))
        total = sum(map(len, texts))
        if total > MAX_BATCH_CHARS:
            raise HTTPError(
                422,
                f"`texts` has {total:,} characters together; at most {MAX_BATCH_CHARS:,} a "
                "call: send them in several calls",
                field="texts",
            )
        return {"results": self.extractor.extract_many(texts, batch_size=PIPE_BATCH)}
