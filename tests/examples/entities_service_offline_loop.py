"""examples/screenplay_entities served (run inside a loopback-only network namespace by
tests/examples/test_entities_service.py): a spaCy pipeline registered as ``screenplay-ner``,
a real host with the example's gateway.yaml mounted, the Entities service deployed on it, then
``/entities/extract`` and ``/entities/extract_batch`` called directly (invoke key, Python
client) and through the gateway (one key per team, scope ``route:entities``, a per-key limit).

The pipeline registered here is a blank English pipeline with an initialised, untrained
``ner`` (seeded): this file tests the serving — offsets, contract, batching, errors, keys and
limits; the trained model's scores on the gold set are tests/examples/test_entities_flow.py's.
Whatever the untrained recogniser says, the structural entities (cues, headings) are the
rules' and the contract holds for every answer.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "screenplay_entities"
sys.path.insert(0, str(EXAMPLE))

pytestmark = pytest.mark.skipif(
    os.environ.get("SHIPYARD_ENTITIES_SERVICE_NETNS") != "1",
    reason="run by tests/examples/test_entities_service.py inside a network namespace",
)

FLOW = """
import tempfile
from shipyard import FlowSpec, Files, current, step


class TinyNERFlow(FlowSpec):
    @step
    def start(self):
        import spacy

        spacy.util.fix_random_seed(0)
        nlp = spacy.blank("en")
        ner = nlp.add_pipe("ner")
        for label in ("PERSON", "LOCATION", "ORG", "TIME"):
            ner.add_label(label)
        nlp.initialize()
        folder = tempfile.mkdtemp(prefix="tiny-ner-")
        nlp.to_disk(folder)
        self.pipeline = Files(folder)
        self.next(self.end)

    @step
    def end(self):
        current.register_model("screenplay-ner", self.pipeline, metrics={"untrained": 1.0})


if __name__ == "__main__":
    TinyNERFlow()
"""

SCENE = (
    "Title: Night Shift\r\n\r\n"
    "INT. JOSÉ'S CAFÉ - NIGHT #3#\r\n\r\n"
    "José wipes the counter 🎉 at 3 a.m. MARIA SANTOS walks in.\r\n\r\n"
    "MARIA SANTOS (V.O.)\r\n(quietly)\r\nWhere is José?\r\n\r\n"
    "JOSÉ ^\r\nRight here, Maria.\r\n\r\n"
    "@McCLANE\r\nYippee ki-yay.\r\n\r\n"
    "!LOUD BANG.\r\n\r\n"
    "EXT. HARBOUR - DAWN\r\n\r\nmaria waits at the pier.\r\n"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _keys(monkeypatch: pytest.MonkeyPatch, home: str, *specs: tuple[str, str]) -> list[str]:
    """Keys of the host's home, made in process (what `shipyard keys create` does, without
    a Python start per key): one per (scope, name)."""
    from shipyard.keys import KeyStore
    from shipyard.store.meta import MetaStore

    monkeypatch.setenv("SHIPYARD_HOME", home)
    with MetaStore.open() as meta, KeyStore(meta) as keys:
        return [keys.create(name, (scope,))[1] for scope, name in specs]


def _holds(answer: dict[str, Any], text: str) -> None:
    from rules import LABELS

    assert set(answer) == {"entities", "scenes"}
    for e in answer["entities"]:
        assert set(e) == {"label", "text", "start", "end", "scene"}
        assert e["label"] in LABELS and text[e["start"] : e["end"]] == e["text"], e
    assert [s["index"] for s in answer["scenes"]] == list(range(len(answer["scenes"])))
    if text.strip():
        assert answer["scenes"][-1]["end"] == len(text)


@pytest.mark.timeout(400)  # ~20 s of CPU; minutes of wall time on a machine shared by many
def test_deploy_extract_batch_errors_keys_and_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") is None  # the example sets what it needs itself
    for name in [k for k in os.environ if k.startswith("SHIPYARD_")]:
        monkeypatch.delenv(name)
    env = dict(os.environ)
    env["SHIPYARD_HOME"] = home = str(tmp_path / "home")
    shipyard = [sys.executable, "-m", "shipyard"]
    (tmp_path / "tiny_flow.py").write_text(FLOW)
    # the model is registered while the host starts
    flow = subprocess.Popen(
        [sys.executable, str(tmp_path / "tiny_flow.py"), "run"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    invoke, team_a, team_b, other = _keys(
        monkeypatch,
        home,
        ("invoke:entities", "gateway"),
        ("route:entities", "team-subtitles"),
        ("route:entities", "team-dubbing"),
        ("route:chat", "team-chat"),
    )

    # the example's gateway file, its per-key limit lowered so that it bites in a test
    config = yaml.safe_load((EXAMPLE / "gateway.yaml").read_text())
    (route,) = config["routes"]
    assert route["type"] == "service" and route["upstream"]["service"] == "entities"
    assert route["limits"]["per_key"]["requests_per_minute"] >= 60
    route["limits"]["per_key"]["requests_per_minute"] = 4
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(config))

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "host.log", "wb")  # noqa: SIM115 - closed in finally
    host = subprocess.Popen(
        [*shipyard, "serve", "--port", str(port), "--no-scheduler",
         "--gateway-config", str(tmp_path / "gateway.yaml")],
        env={**env, "ENTITIES_INVOKE_KEY": invoke}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert host.poll() is None, (tmp_path / "host.log").read_text()[-3000:]
                time.sleep(0.1)
        flow_out = flow.communicate(timeout=120)[0]
        assert flow.returncode == 0, flow_out[-3000:]
        _run(env, *shipyard, "deploy", f"{EXAMPLE / 'service.py'}:Entities",
             "--name", "entities", "--url", url)  # fmt: skip
        direct = {"Authorization": f"Bearer {invoke}"}
        with httpx.Client(base_url=url, timeout=60) as client:
            # one text: a Fountain script with CRLF line ends, accents and an emoji
            got = client.post("/entities/extract", json={"text": SCENE}, headers=direct)
            assert got.status_code == 200, got.text
            answer = got.json()
            _holds(answer, SCENE)
            found = {(e["label"], e["text"], e["scene"]) for e in answer["entities"]}
            assert {
                ("LOCATION", "JOSÉ'S CAFÉ", 1), ("TIME", "NIGHT", 1), ("TIME", "3 a.m.", 1),
                ("CHARACTER", "MARIA SANTOS", 1), ("CHARACTER", "JOSÉ", 1),
                ("CHARACTER", "McCLANE", 1), ("CHARACTER", "maria", 2),
                ("LOCATION", "HARBOUR", 2), ("TIME", "DAWN", 2),
            } <= found  # fmt: skip
            assert [s["heading"] for s in answer["scenes"]] == [
                None, "INT. JOSÉ'S CAFÉ - NIGHT", "EXT. HARBOUR - DAWN"
            ]  # fmt: skip
            assert answer["scenes"][1]["characters"] == ["MARIA SANTOS", "JOSÉ", "MCCLANE"]

            # many texts: the same answers as one by one
            texts = [SCENE, "EXT. PIER - DAY\n\nGulls.", "ANA: ¿Dónde está Tom?\nTOM: Aquí.", ""]
            got = client.post("/entities/extract_batch", json={"texts": texts}, headers=direct)
            assert got.status_code == 200, got.text
            results = got.json()["results"]
            assert len(results) == len(texts)
            for text, result in zip(texts, results, strict=True):
                _holds(result, text)
                alone = client.post("/entities/extract", json={"text": text}, headers=direct)
                assert alone.json() == result
            assert results[3] == {"entities": [], "scenes": []}

            # bad input: a 422 naming the field, never a traceback
            for path, bad, field in (
                ("extract", {}, "text"),
                ("extract", {"text": 42}, "text"),
                ("extract", {"text": "x" * 300_001}, "text"),
                ("extract", {"text": "x", "lang": "en"}, "lang"),
                ("extract_batch", {"texts": []}, "texts"),
                ("extract_batch", {"texts": ["ok", None]}, "texts.1"),
                ("extract_batch", {"texts": ["ok", "x" * 300_001]}, "texts.1"),
                ("extract_batch", {"texts": ["x" * 250_000] * 5}, "texts"),
                ("extract_batch", {"texts": "one text"}, "texts"),
            ):
                answer = client.post(f"/entities/{path}", json=bad, headers=direct)
                assert answer.status_code == 422, (path, answer.text[:300])
                error = answer.json()["error"]
                assert error.get("field") == field or field in error["message"], error
                assert "Traceback" not in answer.text

            # keys: none, or one without the scope, is refused
            assert client.post("/entities/extract", json={"text": "x"}).status_code == 401
            as_team = {"Authorization": f"Bearer {team_a}"}
            refused = client.post("/entities/extract", json={"text": "x"}, headers=as_team)
            assert refused.status_code == 403, refused.text

            # through the gateway: a team's key works and answers what the host answers
            gateway = url + "/gateway/entities"
            body = {"text": SCENE}
            got = client.post(f"{gateway}/extract", json=body, headers=as_team)
            assert got.status_code == 200, got.text
            assert got.json() == client.post("/entities/extract", json=body, headers=direct).json()
            bad = client.post(f"{gateway}/extract", json={"text": 42}, headers=as_team)
            assert bad.status_code == 422 and "text" in bad.text  # the host's 422, passed on
            for headers in ({"Authorization": f"Bearer {other}"}, {}):
                refused = client.post(f"{gateway}/extract", json=body, headers=headers)
                assert refused.status_code in (401, 403), refused.text
            # the per-key limit (lowered to 4 a minute) bites team A, not team B
            statuses = [
                client.post(f"{gateway}/extract", json=body, headers=as_team) for _ in range(4)
            ]
            limited = statuses[-1]
            assert [r.status_code for r in statuses][:1] == [200]
            assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
            as_b = {"Authorization": f"Bearer {team_b}"}
            assert client.post(f"{gateway}/extract", json=body, headers=as_b).status_code == 200

        # directly with shipyard's Python client
        import shipyard

        with shipyard.connect(url, invoke) as sy:
            assert sy.entities.extract(text=SCENE) == answer_of(url, invoke, SCENE)
            assert len(sy.entities.extract_batch(texts=["a", "b"])["results"]) == 2
    finally:
        if flow.poll() is None:
            flow.kill()
        host.send_signal(signal.SIGTERM)
        host.wait(30)
        log.close()
    shown = (tmp_path / "host.log").read_text(errors="replace")
    assert "contract_violation" not in shown, shown[-3000:]


def answer_of(url: str, key: str, text: str) -> dict[str, Any]:
    got = httpx.post(
        f"{url}/entities/extract",
        json={"text": text},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    return json.loads(got.text)  # type: ignore[no-any-return]
