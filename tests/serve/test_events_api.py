"""``POST /api/v1/events`` on the host (in process, no workers): an ``events:publish`` key
publishes, an admin key too; a key of another scope is 403 naming the scope, none is 401;
bad names, bodies and oversized payloads are clear 4xx; an idempotency id publishes once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from shipyard.keys import KeyStore
from shipyard.schedules.policies import Policies
from shipyard.schedules.store import NewVersion, ScheduleStore
from shipyard.serve.host import Host
from shipyard.store import context as _stores
from shipyard.store.events import MAX_PAYLOAD_BYTES, recent_events

URL = "/api/v1/events"


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL", "SHIPYARD_USER"):
        monkeypatch.delenv(name, raising=False)
    _stores.reset()
    made = Host.from_settings()
    yield made
    for close in reversed(made.on_close):
        close()
    _stores.reset()


def _keys(host: Host) -> dict[str, str]:
    with KeyStore(host.meta) as keys:
        return {
            scope: keys.create(f"k-{scope}", [scope])[1]
            for scope in ("events:publish", "admin", "invoke:*")
        }


def _post(client: TestClient, body: Any, key: str | None, **headers: str) -> Any:
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return client.post(URL, json=body, headers=headers)


def test_publishing_events_over_http(host: Host) -> None:
    keys = _keys(host)
    ScheduleStore(host.meta).save(
        "ranker",
        NewVersion(
            flow_name="RankerFlow",
            code_key="0" * 64,
            module="ranker_flow",
            flow_file="ranker_flow.py",
            parameters={"day": None},
            cron=None,
            timezone="UTC",
            triggers=[{"type": "event", "name": "ratings-updated", "parameters": {"day": "date"}}],
            policies=Policies(),
        ),
        user="ops",
        now=_now(),
    )
    client = TestClient(
        host,
        client=("127.0.0.1", 1),
        base_url="http://127.0.0.1:8000",
        raise_server_exceptions=False,
    )
    body = {"name": "ratings-updated", "payload": {"date": "2026-03-01"}}

    none = _post(client, body, None)
    assert none.status_code == 401 and "events:publish" in none.json()["error"]["message"]
    wrong = _post(client, body, keys["invoke:*"])
    assert wrong.status_code == 403
    assert "use a key with scope 'events:publish'" in wrong.json()["error"]["message"]

    made = _post(client, body, keys["events:publish"])
    assert made.status_code == 201, made.text
    answer = made.json()
    assert answer["schedules"] == ["ranker"]
    assert answer["event"]["name"] == "ratings-updated" and answer["event"]["source"] == "api"
    assert answer["event"]["payload"] == {"date": "2026-03-01"}
    assert answer["event"]["published_by"] == "k-events:publish"
    by_admin = _post(client, {"name": "nobody-waits"}, keys["admin"])
    assert by_admin.status_code == 201 and by_admin.json()["schedules"] == []
    assert by_admin.json()["event"]["payload"] == {}

    # an idempotency id: the second time answers the first event and publishes nothing
    once = {**body, "id": "feed-2026-03-01"}
    first = _post(client, once, keys["events:publish"])
    again = _post(client, once, keys["events:publish"])
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["event"]["id"] == first.json()["event"]["id"]
    assert len(recent_events(host.meta)) == 3

    def refused(payload: Any, status: int, kind: str, text: str, **headers: str) -> None:
        answer = _post(client, payload, keys["events:publish"], **headers)
        assert answer.status_code == status, answer.text[:300]
        error = answer.json()["error"]
        assert error["type"] == kind and text in error["message"], error

    refused({"name": "bad name!"}, 422, "validation_error", "event name 'bad name!': use 1-128")
    refused({"payload": {}}, 422, "validation_error", "field 'name' is required")
    refused({"name": "x", "payload": [1]}, 422, "validation_error", "payload is a JSON object")
    refused({"name": "x", "when": 1}, 422, "validation_error", "unknown field(s) ['when']")
    refused({"name": "x", "id": ""}, 422, "validation_error", "idempotency id")
    big = {"name": "x", "payload": {"blob": "a" * (MAX_PAYLOAD_BYTES + 10)}}
    refused(big, 413, "payload_too_large", "over the limit of 65536 (64 KiB)")
    huge = {"name": "x", "payload": {"blob": "a" * (MAX_PAYLOAD_BYTES * 2)}}
    refused(huge, 413, "payload_too_large", "at most 65536 bytes")
    garbled = client.post(
        URL,
        content=b"{not json",
        headers={
            "Authorization": f"Bearer {keys['events:publish']}",
            "Content-Type": "application/json",
        },
    )
    assert garbled.status_code == 400 and garbled.json()["error"]["type"] == "invalid_json"
    form = client.post(
        URL,
        content=b"name=x",
        headers={"Authorization": f"Bearer {keys['events:publish']}"},
    )
    assert form.status_code == 415 and "application/json" in form.json()["error"]["message"]
    # the scope publishes and nothing else: the admin API stays closed to it
    deploys = client.get(
        "/api/v1/deployments", headers={"Authorization": f"Bearer {keys['events:publish']}"}
    )
    assert deploys.status_code == 403
    assert len(recent_events(host.meta)) == 3  # nothing refused was stored


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
