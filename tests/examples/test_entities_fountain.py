"""examples/screenplay_entities without a model: the Fountain parser (every element of the
syntax, plain text, offsets into the original text with accents, emoji and CRLF) and the
structural entities (cues and their mentions, heading places and times, clock times)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "screenplay_entities"
sys.path.insert(0, str(EXAMPLE))

from fountain import Script, parse  # noqa: E402
from rules import LABELS, structural  # noqa: E402

SCRIPT = """\
Title: The Long Night
Credit: written by
Author: Ana Lúcia

INT. JOSÉ'S CAFÉ - KITCHEN - NIGHT #3A#

José wipes the counter 🎉 at 3 a.m. MARIA SANTOS walks in from the rain.

MARIA SANTOS (V.O.) (cont'd)
(quietly)
Where is José?
It's past midnight.

JOSÉ ^
Right here, Maria.

@McCLANE
Yippee ki-yay.

!LOUD BANG. Everyone ducks.

CUT TO:

EXT. HARBOUR - DAWN

The waitress pours coffee. Santos watches her; maria laughs at 10:30.

WAITRESS
I will go.

> FADE OUT.

.FLASHBACK - 1985

>THE END<
"""


def entities(text: str) -> list[tuple[str, str, int | None]]:
    return [(e.label, e.text, e.scene) for e in structural(parse(text), text)]


def slices_hold(script: Script, text: str) -> None:
    """Every span the parser returns is a slice of the text it was given."""
    for scene in script.scenes:
        assert 0 <= scene.start <= scene.end <= len(text)
        if scene.heading is not None:
            h = scene.heading
            assert text[h.start : h.end] == h.text
            for part in (h.place, h.time):
                if part is not None:
                    assert text[part.start : part.end] == part.text
        for s in scene.dialogue + scene.action + scene.parentheticals + scene.transitions:
            assert text[s.start : s.end] == s.text
        for cue in scene.cues:
            assert " ".join(text[cue.start : cue.end].upper().split()) == cue.name


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_every_element_of_a_fountain_script(newline: str) -> None:
    text = SCRIPT.replace("\n", newline)
    script = parse(text)
    slices_hold(script, text)
    assert script.title_page == {
        "Title": "The Long Night",
        "Credit": "written by",
        "Author": "Ana Lúcia",
    }
    assert [s.to_json()["heading"] for s in script.scenes] == [
        None,  # the title page is scene 0
        "INT. JOSÉ'S CAFÉ - KITCHEN - NIGHT",
        "EXT. HARBOUR - DAWN",
        "FLASHBACK - 1985",
    ]
    title, cafe, harbour, flashback = script.scenes
    # scenes partition the text, in order
    assert [s.index for s in script.scenes] == [0, 1, 2, 3]
    assert title.start == 0 and title.end == cafe.start
    assert cafe.end == harbour.start and harbour.end == flashback.start
    assert flashback.end == len(text)

    assert cafe.to_json() == {
        "index": 1,
        "start": cafe.start,
        "end": cafe.end,
        "heading": "INT. JOSÉ'S CAFÉ - KITCHEN - NIGHT",
        "int_ext": "INT",
        "place": "JOSÉ'S CAFÉ - KITCHEN",
        "time": "NIGHT",
        "characters": ["MARIA SANTOS", "JOSÉ", "MCCLANE"],
    }
    assert cafe.heading is not None and cafe.heading.number == "3A"
    maria, jose, mcclane = cafe.cues
    assert (maria.name, maria.extension, maria.dual) == ("MARIA SANTOS", "V.O., cont'd", True)
    assert (jose.name, jose.extension, jose.dual) == ("JOSÉ", None, True)  # `^`: both dual
    assert (mcclane.name, text[mcclane.start : mcclane.end], mcclane.dual) == (
        "MCCLANE",
        "McCLANE",  # forced `@`: the name as written, without the @
        False,
    )
    assert [p.text for p in cafe.parentheticals] == ["(quietly)"]
    assert [d.text for d in cafe.dialogue] == [
        "Where is José?",
        "It's past midnight.",
        "Right here, Maria.",
        "Yippee ki-yay.",
    ]
    assert [a.text for a in cafe.action] == [
        "José wipes the counter 🎉 at 3 a.m. MARIA SANTOS walks in from the rain.",
        "LOUD BANG. Everyone ducks.",  # forced `!`: action, not a cue, without the `!`
    ]
    assert [t.text for t in cafe.transitions] == ["CUT TO:"]
    assert [t.text for t in harbour.transitions] == ["FADE OUT."]  # forced `>`
    assert harbour.to_json()["characters"] == ["WAITRESS"]
    assert (flashback.heading and flashback.heading.int_ext) is None  # forced `.`
    assert [a.text for a in flashback.action] == ["THE END"]  # centred `>...<`


def test_offsets_are_python_str_indices_with_emoji_and_accents() -> None:
    text = "INT. CAFÉ 🎉 - NIGHT\r\n\r\nZOË\r\nWhere is Ñandú?\r\n"
    script = parse(text)
    slices_hold(script, text)
    (scene,) = script.scenes
    assert scene.heading is not None and scene.heading.place is not None
    assert scene.heading.place.text == "CAFÉ 🎉"
    (cue,) = scene.cues
    assert (cue.name, cue.start, cue.end) == ("ZOË", text.index("ZOË"), text.index("ZOË") + 3)
    # code points, not UTF-8 bytes or UTF-16 units: the emoji is one index
    assert text.index("ZOË") == len("INT. CAFÉ 🎉 - NIGHT\r\n\r\n") == 23


def test_plain_text_is_one_scene_of_action_and_name_colon_lines_are_cues() -> None:
    text = "maria and Tom walk to the harbour in Lisbon.\nTOM: Is it far?\nMARIA: Not far."
    script = parse(text)
    slices_hold(script, text)
    (scene,) = script.scenes
    assert scene.heading is None and (scene.start, scene.end) == (0, len(text))
    assert scene.characters == ["TOM", "MARIA"]
    assert [d.text for d in scene.dialogue] == ["Is it far?", "Not far."]
    assert entities(text) == [
        ("CHARACTER", "maria", 0),  # a cued name in lower case is still the character
        ("CHARACTER", "Tom", 0),
        ("CHARACTER", "TOM", 0),
        ("CHARACTER", "MARIA", 0),
    ]


def test_a_scene_pasted_without_a_heading_and_an_empty_text() -> None:
    text = "\n\nRAY\nI will call May at noon.\n"
    script = parse(text)
    assert len(script.scenes) == 1 and script.scenes[0].heading is None
    assert script.scenes[0].cues[0].name == "RAY"
    assert parse("").scenes == [] and parse("  \n\n").scenes == []
    # text before the first heading that is only blank: the heading's scene is scene 0
    assert parse("\n\nEXT. PIER - DAY\n\nWaves.").scenes[0].to_json()["heading"] == (
        "EXT. PIER - DAY"
    )


@pytest.mark.parametrize(
    "line, int_ext, place, time",
    [
        ("INT. HOUSE - DAY", "INT", "HOUSE", "DAY"),
        ("EXT. CITY STREET -- NIGHT", "EXT", "CITY STREET", "NIGHT"),
        ("INT./EXT. CAR (MOVING) - CONTINUOUS", "INT/EXT", "CAR (MOVING)", "CONTINUOUS"),
        ("INT/EXT BARN – SUNSET", "INT/EXT", "BARN", "SUNSET"),
        ("I/E SUBMARINE", "INT/EXT", "SUBMARINE", None),
        ("EST. MANHATTAN SKYLINE - NIGHT #101#", "EST", "MANHATTAN SKYLINE", "NIGHT"),
        ("int. lighthouse - early morning", "INT", "lighthouse", "early morning"),
        (".SNIPER'S NEST - DUSK", None, "SNIPER'S NEST", "DUSK"),
    ],
)
def test_scene_headings_and_their_place_and_time(
    line: str, int_ext: str | None, place: str, time: str | None
) -> None:
    text = f"\n{line}\n\nA gull.\n"
    (scene,) = parse(text).scenes
    assert scene.to_json()["int_ext"] == int_ext
    assert scene.to_json()["place"] == place and scene.to_json()["time"] == time


def test_what_is_not_a_heading_cue_or_text() -> None:
    text = (
        "EXT. FIELD - DAY\n\n"
        "Interior design magazines everywhere.\n\n"  # "Int" without a dot or space
        "...and then silence.\n\n"  # an ellipsis is not a forced heading
        "# ACT ONE\n\n= Maria finds the key.\n\n===\n\n"  # section, synopsis, page break
        "[[MARIA should be older]]\n\n"
        "/* An old draft:\n\nMARIA\nHello.\n*/\n\n"
        "THE ALARM RINGS.\n\n"  # capitals with nothing after: action
        "BOB\n[[a note inside a block]]\nHi.\n"
    )
    script = parse(text)
    slices_hold(script, text)
    (scene,) = script.scenes
    assert scene.characters == ["BOB"]  # MARIA in the boneyard does not speak
    assert [d.text for d in scene.dialogue] == ["Hi."]
    assert [a.text for a in scene.action] == [
        "Interior design magazines everywhere.",
        "...and then silence.",
        "THE ALARM RINGS.",
    ]
    assert ("CHARACTER", "MARIA", 0) not in entities(text)  # notes hide names too


def test_lyrics_and_two_space_lines_inside_dialogue() -> None:
    text = "INT. BAR - NIGHT\n\nMARIA\n~Sing to me, Oskar\n  \nstill singing\n\nOSKAR\nNo.\n"
    (scene,) = parse(text).scenes
    assert [d.text for d in scene.dialogue] == ["Sing to me, Oskar", "still singing", "No."]
    assert ("CHARACTER", "Oskar", 0) in entities(text)


def test_structural_entities_of_the_script() -> None:
    text = SCRIPT.replace("\n", "\r\n")
    found = structural(parse(text), text)
    for e in found:
        assert text[e.start : e.end] == e.text and e.label in LABELS
        assert e.to_json() == {
            "label": e.label,
            "text": e.text,
            "start": e.start,
            "end": e.end,
            "scene": e.scene,
        }
    spans = sorted((e.start, e.end) for e in found)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))  # no overlap
    got = [(e.label, e.text, e.scene) for e in found]
    assert got == [
        ("LOCATION", "JOSÉ'S CAFÉ - KITCHEN", 1),
        ("TIME", "NIGHT", 1),
        ("CHARACTER", "José", 1),
        ("TIME", "3 a.m.", 1),
        ("CHARACTER", "MARIA SANTOS", 1),
        ("CHARACTER", "MARIA SANTOS", 1),  # the cue
        ("CHARACTER", "José", 1),  # inside dialogue
        ("CHARACTER", "JOSÉ", 1),
        ("CHARACTER", "Maria", 1),  # the first name alone
        ("CHARACTER", "McCLANE", 1),
        ("LOCATION", "HARBOUR", 2),
        ("TIME", "DAWN", 2),
        ("CHARACTER", "Santos", 2),  # the surname alone, capitalised
        ("CHARACTER", "maria", 2),  # the first name in lower case
        ("TIME", "10:30", 2),
        ("CHARACTER", "WAITRESS", 2),  # the cue, but "The waitress" is a role
        ("TIME", "1985", 3),  # .FLASHBACK is not a place
    ]


@pytest.mark.parametrize(
    "action, times",
    [
        ("She wakes at 3 a.m. and again at 4am.", ["3 a.m.", "4am"]),
        ("The train leaves at 10:30 pm sharp, not 9:15.", ["10:30 pm", "9:15"]),
        ("By noon, then midnight, then dawn.", ["noon", "midnight", "dawn"]),
        ("At half past nine, or seven o'clock.", ["half past nine", "seven o'clock"]),
        ("Room 101 has 30 chairs; the dawning age.", []),
    ],
)
def test_explicit_times_in_action_lines(action: str, times: list[str]) -> None:
    text = f"INT. STATION - LATER\n\n{action}\n"
    got = entities(text)
    assert ("TIME", "LATER", 0) not in got  # a continuity word is not a time of day
    assert [t for label, t, _ in got if label == "TIME"] == times


def test_common_word_names_and_numbered_cues_are_careful() -> None:
    text = (
        "INT. OFFICE - DAY\n\nWILL\nI will find Will's file.\n\n"
        "COP #1\nFreeze!\n\nThe cop #1 runs. Sue Grant sues.\n\nSUE GRANT\nStop.\n"
    )
    got = entities(text)
    assert [t for label, t, _ in got if label == "CHARACTER"] == [
        "WILL",
        "Will",  # capitalised: the name; "will" the verb is not
        "COP #1",  # the cue; its other mention is a label, not a name
        "Sue Grant",
        "SUE GRANT",
    ]


def test_loose_drafts_lead_ins_commas_joint_cues_and_dash_cues() -> None:
    text = (
        'RADIO PLAY - "SEVEN MINUTES AT THE BANK"\n\n'  # a title, not a cue
        "FLASHBACK - EXT. RAF BIGGIN HILL - AIRFIELD - DAY (1943)\n\n"
        "BENEDEK & PRIYANKA\nTogether now.\n\n"
        "EXT. CAMPSITE, YOSEMITE VALLEY, EARLY MORNING\n\n"
        "CALLA - Whose idea was this?\nBRAM - (quietly) Yours.\nSOUND: A kettle.\n"
    )
    script = parse(text)
    slices_hold(script, text)
    title, flashback, camp = script.scenes
    assert title.cues == [] and title.heading is None
    assert (flashback.to_json()["place"], flashback.to_json()["time"]) == (
        "RAF BIGGIN HILL - AIRFIELD",
        "DAY",  # the year after it is not the time of day
    )
    assert flashback.characters == ["BENEDEK", "PRIYANKA"]  # a cue per name
    assert (camp.to_json()["place"], camp.to_json()["time"]) == (
        "CAMPSITE, YOSEMITE VALLEY",
        "EARLY MORNING",
    )
    assert camp.characters == ["CALLA", "BRAM"]  # SOUND: is not a speaker
    assert [d.text for d in camp.dialogue] == ["Whose idea was this?", "(quietly) Yours."]


def test_a_line_all_in_capitals_widens_no_cued_name() -> None:
    text = (
        "EXT. ORCHARD - DUSK\n\nFENELLA\nLadder.\n\nMCGUIRE\nHere.\n\n"
        "!FENELLA AND MCGUIRE WATCH THE SUN GO DOWN.\n\nA shout: ODALYS QUELL (50s) runs in.\n\n"
        "ODALYS\nLate!\n"
    )
    got = [t for label, t, _ in entities(text) if label == "CHARACTER"]
    # in a shouted line capitals set no name apart; in a line with lower case they do
    assert got == ["FENELLA", "MCGUIRE", "FENELLA", "MCGUIRE", "ODALYS QUELL", "ODALYS"]


def test_a_cued_name_written_out_in_full_is_one_mention_and_its_words_count() -> None:
    text = (
        "INT. SALOON - NIGHT\n\nJUDAH QUELL (50s) and MARSHAL ODALYS VANCE step in.\n\n"
        "QUELL\nEvening.\n\nODALYS\nJudah. Miss Vance says hello.\n"
    )
    got = [(label, t) for label, t, _ in entities(text) if label == "CHARACTER"]
    assert got == [
        ("CHARACTER", "JUDAH QUELL"),  # the capitals before the cue's name too
        ("CHARACTER", "ODALYS VANCE"),  # a title (MARSHAL) is not part of the name
        ("CHARACTER", "QUELL"),
        ("CHARACTER", "ODALYS"),
        ("CHARACTER", "Judah"),  # a word of the full name, alone
        ("CHARACTER", "Vance"),
    ]
