"""examples/screenplay_entities served: the output contract's checks on broken answers (in
process), then tests/examples/entities_service_offline_loop.py (not collected on its own: a
real host with the example's gateway, the service deployed, extract, batch, errors, team keys
and a per-key limit) in a pytest of its own inside a loopback-only network namespace
(``unshare -n``), so a download hidden anywhere fails at once instead of hanging."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from support.netns import OFFLINE_FLAGS, pytest_in_netns

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "screenplay_entities"
sys.path.insert(0, str(EXAMPLE))

from service import ContractBroken, extraction_holds, extractions_hold  # noqa: E402

TEXT = "INT. CAFÉ 🎉 - NIGHT\r\n\r\nZOË\r\nHi.\r\n"


def good() -> dict[str, Any]:
    return {
        "entities": [
            {"label": "LOCATION", "text": "CAFÉ 🎉", "start": 5, "end": 11, "scene": 0},
            {"label": "CHARACTER", "text": "ZOË", "start": 23, "end": 26, "scene": 0},
        ],
        "scenes": [
            {"index": 0, "start": 0, "end": len(TEXT), "heading": "INT. CAFÉ 🎉 - NIGHT",
             "int_ext": "INT", "place": "CAFÉ 🎉", "time": "NIGHT", "characters": ["ZOË"]}
        ],
    }  # fmt: skip


def test_the_contract_holds_for_a_good_answer_and_names_what_breaks_it() -> None:
    assert extraction_holds(good(), {"text": TEXT})
    assert extractions_hold({"results": [good(), good()]}, {"texts": [TEXT, TEXT]})

    def broken(change: Any) -> str:
        answer = good()
        change(answer)
        with pytest.raises(ContractBroken) as info:
            extraction_holds(answer, {"text": TEXT})
        return str(info.value)

    # an offset counted in UTF-8 bytes (or UTF-16 units) instead of code points
    assert "the text at 24-27 is 'OË\\r'" in broken(
        lambda a: a["entities"][1].update(start=24, end=27)
    )
    assert "outside the text" in broken(lambda a: a["entities"][1].update(end=99))
    assert "outside the text" in broken(lambda a: a["entities"][1].update(start=26))  # empty
    assert "'NAME'" in broken(lambda a: a["entities"][1].update(label="NAME"))
    assert "scene 1, which is not one" in broken(lambda a: a["entities"][1].update(scene=1))
    assert "index 3" in broken(lambda a: a["scenes"][0].update(index=3))
    assert "outside the text" in broken(lambda a: a["scenes"][0].update(end=len(TEXT) + 1))
    with pytest.raises(ContractBroken, match="1 results for 2 texts"):
        extractions_hold({"results": [good()]}, {"texts": [TEXT, TEXT]})
    with pytest.raises(ContractBroken, match=r"results\[1\]: entities\[0\]"):
        extractions_hold({"results": [good(), good()]}, {"texts": [TEXT, TEXT.lower()]})


@pytest.mark.timeout(450)
def test_the_served_example_passes_inside_a_loopback_only_namespace() -> None:
    out = pytest_in_netns(
        "tests/examples/entities_service_offline_loop.py",
        timeout=430,
        env={"SHIPYARD_ENTITIES_SERVICE_NETNS": "1"},
        drop=OFFLINE_FLAGS,  # the example must set what it needs itself
    )
    assert "1 passed" in out.stdout, out.stdout[-3000:]
