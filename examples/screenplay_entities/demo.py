"""``make demo-entities``: train the screenplay entity model on generated scenes, score it on
the hand-written gold set beside the rules-and-gazetteer baseline, register it, serve it and
read a scene and a short script through the service — offline, from a blank spaCy pipeline.

Runs under its own SHIPYARD_HOME (``.demo/entities/``), ends by itself and leaves nothing
running; the last lines say how to bring the host back up. About two to three minutes on a
2-core machine (``ENTITIES_EXAMPLES`` / ``ENTITIES_STEPS`` set the training size; the full
size is ``python examples/screenplay_entities/flow.py run``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # examples/demo_support.py

from demo_support import deployed, post, post_refused, shipyard, step  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

EXAMPLES = int(os.environ.get("ENTITIES_EXAMPLES", "800"))
STEPS = int(os.environ.get("ENTITIES_STEPS", "800"))

SCENE = """\
INT. HARBOUR MASTER'S OFFICE - NIGHT

Rain on the glass. TOMASINA REYES (40s) studies a shipping manifest. Across the desk,
her deputy OLUWASEUN sorts keys.

TOMASINA
The Valletta boat was due at nine.

OLUWASEUN (O.S.)
Brackenridge Freight says the engine failed near Marsaxlokk.

Tomasina checks the wall clock: 11:40.

TOMASINA (CONT'D)
Then call Ingeborg at the customs office. Tonight.
"""

SCRIPT = """\
Title: Low Tide
Author: Demo

EXT. PIER - DAWN

Gulls. ANSGAR hauls a net. FIFI watches from the rail.

ANSGAR ^
Don't just stand there.

FIFI ^
I'm supervising.

INT. BAIT SHOP - LATER

@DeVRIES counts coins.

@DeVRIES
Ansgar owes me forty euros and a boat.
"""


def show(answer: dict) -> None:
    for e in answer["entities"]:
        print(f"  scene {e['scene']}  {e['label']:9}  {e['text']!r}  [{e['start']}:{e['end']}]")
    for s in answer["scenes"]:
        print(f"  scene {s['index']}: {s['heading']!r}, speaking: {', '.join(s['characters'])}")


def main() -> int:
    home = Path(os.environ.get("SHIPYARD_HOME") or HERE.parents[1] / ".demo" / "entities")
    os.environ["SHIPYARD_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    step(f"train: {EXAMPLES} generated inputs, {STEPS} steps; score on the gold set; register")
    started = time.monotonic()
    flow = [sys.executable, str(HERE / "flow.py"), "run",
            "--examples", str(EXAMPLES), "--steps", str(STEPS)]  # fmt: skip
    subprocess.run(flow, check=True)
    print(f"(the flow took {time.monotonic() - started:.0f} s)")
    shipyard("models", "show", "screenplay-ner")

    with deployed(
        home,
        "the model deployed as the entities service",
        f"{HERE / 'service.py'}:Entities",
        "entities",
    ) as url:
        step("extract: one scene (POST /entities/extract)")
        answer = post(f"{url}/entities/extract", {"text": SCENE})
        assert isinstance(answer, dict)
        show(answer)
        step("extract_batch: a scene and a short script in one call")
        batch = post(f"{url}/entities/extract_batch", {"texts": [SCRIPT, SCENE]})
        assert isinstance(batch, dict)
        show(batch["results"][0])
        print(f"  (and {len(batch['results'][1]['entities'])} entities in the second text)")
        step("bad input: a clear 422")
        print(f"no text -> {post_refused(f'{url}/entities/extract', b'{}')}")

    step("done: the host has stopped and nothing is left running")
    print("Look at the model and its gold-set scores (shipyard models show screenplay-ner) and")
    print("the card of the run (shipyard show ScreenplayNERFlow): F1 per label, strict and")
    print("partial, beside the baseline, the confusions and the misses. The service, which the")
    print("host restores, is at http://127.0.0.1:8000/entities/docs. Bring it back up with:")
    print(f"  SHIPYARD_HOME={home} .venv/bin/shipyard serve --port 8000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
