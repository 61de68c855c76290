"""examples/screenplay_entities/pipeline.py as a spaCy pipeline: the ``screenplay`` component
after a recogniser makes ``nlp(text)._.screenplay`` the service's whole answer, survives a
save and a load, and keeps a recogniser's times only in action lines.

The recogniser here is spaCy's own ``entity_ruler`` with fixed patterns, named ``ner`` (no
trained model:
the trained one is tests/examples/test_entities_flow.py's), so what is asserted is the
component and the merge, whatever a model would find."""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "screenplay_entities"
sys.path.insert(0, str(EXAMPLE))

import spacy  # noqa: E402  (the entities extra: make test installs it; never a skip)
from pipeline import COMPONENT, Extractor  # noqa: E402

SCENE = (
    "INT. SIGNAL BOX - NIGHT\n\n"
    "Levers in a row. TAVISH logs the last train. The clock says twenty to eleven.\n\n"
    "TAVISH\n"
    "Wake me at twenty to eleven, Wennie. The Penwithick goods is late.\n\n"
    "They go out at 1900 hours.\n"
)


def _nlp() -> object:
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler", name="ner")  # stands where the trained ner would
    ruler.add_patterns(
        [
            {"label": "TIME", "pattern": "twenty to eleven"},
            {"label": "TIME", "pattern": [{"TEXT": "1900"}, {"LOWER": "hours"}]},
            {"label": "LOCATION", "pattern": "Penwithick"},
        ]
    )
    return nlp


def test_the_pipeline_is_the_extractor_and_keeps_times_only_in_action(tmp_path: Path) -> None:
    nlp = _nlp()
    extractor = Extractor(nlp)  # adds the component
    assert nlp.component_names == ["ner", COMPONENT]
    answer = nlp(SCENE)._.screenplay
    assert nlp.pipe_names == [COMPONENT]  # the recogniser runs inside it, on the prose
    assert extractor.extract(SCENE) == answer
    assert extractor.extract_many([SCENE, SCENE]) == [answer, answer]
    got = [(e["label"], e["text"], e["start"]) for e in answer["entities"]]
    for _, text, start in got:
        assert SCENE[start : start + len(text)] == text
    times = [(t, s) for label, t, s in got if label == "TIME"]
    in_action = SCENE.index("twenty to eleven")
    in_dialogue = SCENE.index("twenty to eleven", in_action + 1)
    # the heading's time (the rules'), the two times in action lines (the recogniser's);
    # not the one said aloud in dialogue
    assert times == [
        ("NIGHT", SCENE.index("NIGHT")),
        ("twenty to eleven", in_action),
        ("1900 hours", SCENE.index("1900 hours")),
    ], got
    assert ("TIME", "twenty to eleven", in_dialogue) not in got
    # a place the recogniser found in dialogue stands; cues and their mentions are the rules'
    assert ("LOCATION", "Penwithick", SCENE.index("Penwithick")) in got
    assert [t for label, t, _ in got if label == "CHARACTER"] == ["TAVISH", "TAVISH"]
    assert answer["scenes"][0]["characters"] == ["TAVISH"]

    # saved and loaded, the pipeline is still the whole extractor (this module registered
    # the component's factory)
    nlp.to_disk(tmp_path / "p")
    again = spacy.load(tmp_path / "p")
    assert again.component_names == ["ner", COMPONENT]
    assert again(SCENE)._.screenplay == answer


def test_the_baseline_needs_no_spacy_pipeline_and_answers_the_same_shape() -> None:
    answer = Extractor(None).extract(SCENE)
    assert set(answer) == {"entities", "scenes"}
    labels = {(e["label"], e["text"]) for e in answer["entities"]}
    assert ("CHARACTER", "TAVISH") in labels and ("TIME", "NIGHT") in labels
    # the rules do not read "twenty to eleven"; only a recogniser can
    assert ("TIME", "twenty to eleven") not in labels


def test_a_recognised_person_holding_a_cued_name_becomes_the_character_only_when_one_name() -> None:
    text = (
        "INT. PIER - DAWN\n\n"
        "Maria Santos ties a rope. Tavita and Oyelaran watch. Like Brodie's father, "
        "she works fast. Mrs. Ivy Pennock waves.\n\n"
        "SANTOS\nRope.\n\nTAVITA\nKnots.\n\nOYELARAN\nYes.\n\nBRODIE\nFast.\n\nPENNOCK\nHello.\n"
    )
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler", name="ner")  # what a model could find as persons
    ruler.add_patterns(
        [
            {"label": "PERSON", "pattern": "Maria Santos"},
            {"label": "PERSON", "pattern": "Tavita and Oyelaran"},
            {"label": "PERSON", "pattern": [{"LOWER": "like"}, {"LOWER": "brodie"}]},
            {"label": "PERSON", "pattern": "Ivy Pennock"},
        ]
    )
    answer = Extractor(nlp).extract(text)
    action_end = text.index("\n\nSANTOS")
    got = [e["text"] for e in answer["entities"] if e["start"] < action_end]
    assert got == [
        "PIER",
        "DAWN",
        "Maria Santos",  # a full name around the cued SANTOS: one character
        "Tavita",  # two characters joined by "and" keep a mention each
        "Oyelaran",
        "Brodie",  # a sentence's first word ("Like") is capitalised whatever it is
        "Ivy Pennock",  # the full stop of "Mrs." ends no sentence
    ], answer["entities"]
    assert {e["label"] for e in answer["entities"][2:7]} == {"CHARACTER"}


def test_a_place_or_organisation_that_starts_with_a_title_only_people_have_is_a_person() -> None:
    text = "EXT. PIER - DAWN\n\nTAVITA waves at Brother Ilie, then walks to St. Louis Road.\n"
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler", name="ner")  # a model's confusions
    ruler.add_patterns(
        [
            {"label": "LOCATION", "pattern": "Brother Ilie"},
            {"label": "LOCATION", "pattern": "St. Louis Road"},
        ]
    )
    got = [(e["label"], e["text"]) for e in Extractor(nlp).extract(text)["entities"]]
    assert ("PERSON", "Ilie") in got, got  # the title trimmed, as a person's is
    assert ("LOCATION", "St. Louis Road") in got, got  # "Saint" names places too
