"""Following a running attempt's logs over HTTP: ``/ui/api/runs/{flow}/{run}/{step}/{task}/logs``
reads the live file from an offset, then the blob that replaces it when the attempt ends; bad
queries are a 4xx JSON error, unknown ids a 404. Tasks are made with tests/support/fakes.py."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from starlette.testclient import TestClient
from ui_support import BASE_URL, LOOPBACK

from shipyard.keys import Guard, KeyStore
from shipyard.store.records import TaskStatus
from shipyard.ui import standalone
from shipyard.ui.logs import CHUNK_BYTES


def _client(fake: Any) -> TestClient:
    app = standalone(fake.meta, fake.blobs, Guard(KeyStore(fake.meta)))
    return TestClient(app, client=LOOPBACK, base_url=BASE_URL)


def _running(fake: Any, **logs: str) -> tuple[int, int, str]:
    """A running DemoFlow start task: (run id, task id, its logs URL)."""
    run_id = fake.run()
    task_id = fake.task(run_id, "start", status=None, **logs)
    return run_id, task_id, f"/ui/api/runs/DemoFlow/{run_id}/start/{task_id}/logs"


def _live(fake: Any, task_id: int, stream: str = "stdout") -> Any:
    record = fake.meta.get_task(task_id)
    return record.live_log(fake.home, 0, stream)


def _get(client: TestClient, url: str, offset: int, stream: str = "stdout") -> dict[str, Any]:
    response = client.get(url, params={"attempt": 0, "stream": stream, "offset": offset})
    assert response.status_code == 200, response.text
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    return dict(response.json())


def test_a_running_log_is_read_by_offset_then_from_the_blob(fake: Any) -> None:
    run_id, task_id, url = _running(fake, stdout="line 1\n", stderr="warn\n")
    client = _client(fake)
    first = _get(client, url, 0)
    assert first == {"text": "line 1\n", "offset": 7, "more": False, "done": False,
                     "status": "running"}  # fmt: skip
    with _live(fake, task_id).open("a", encoding="utf-8") as out:
        out.write("line 2 é\n")
    second = _get(client, url, first["offset"])
    assert second["text"] == "line 2 é\n" and second["done"] is False
    assert second["offset"] == len("line 1\nline 2 é\n".encode())
    assert _get(client, url, second["offset"])["text"] == ""  # nothing new yet
    assert _get(client, url, 0, "stderr")["text"] == "warn\n"

    # the attempt ends: the runtime stores the whole log (with what it flushed last) as a
    # blob and records its key; the live file is still there for a moment, then removed
    out_key = fake.put_bytes("line 1\nline 2 é\nline 3\n".encode())
    err_key = fake.put_bytes(b"warn\n")
    fake.meta.finish_attempt(
        task_id, 0, status=TaskStatus.SUCCEEDED, stdout_key=out_key, stderr_key=err_key
    )
    third = _get(client, url, second["offset"])
    assert third["text"] == "line 3\n" and third["done"] is True and third["more"] is False
    assert third["status"] == "succeeded"
    _live(fake, task_id).unlink()
    _live(fake, task_id, "stderr").unlink()
    assert _get(client, url, third["offset"]) == {**third, "text": ""}
    assert _get(client, url, 0)["text"] == "line 1\nline 2 é\nline 3\n"
    assert _get(client, url, 5, "stderr") == {"text": "", "offset": 5, "more": False,
                                              "done": True, "status": "succeeded"}  # fmt: skip
    fake.finish(run_id)


def test_the_live_file_gone_before_the_blob_is_recorded_is_not_an_error(fake: Any) -> None:
    _, task_id, url = _running(fake, stdout="partial\n")
    client = _client(fake)
    _live(fake, task_id).unlink()  # uploaded and removed; finish_attempt not yet recorded
    assert _get(client, url, 8) == {"text": "", "offset": 8, "more": False, "done": False,
                                    "status": "running"}  # fmt: skip
    fake.meta.finish_attempt(
        task_id, 0, status=TaskStatus.FAILED, stdout_key=fake.put_bytes(b"partial\nboom\n")
    )
    assert _get(client, url, 8)["text"] == "boom\n"


def test_one_answer_is_bounded_and_never_splits_a_character(fake: Any) -> None:
    text = "a" * (CHUNK_BYTES - 1) + "é" * CHUNK_BYTES + "end\n"  # é straddles the bound
    _, task_id, url = _running(fake, stdout=text)
    client = _client(fake)
    parts, offset = [], 0
    while True:
        data = _get(client, url, offset)
        assert len(data["text"].encode()) <= CHUNK_BYTES
        parts.append(data["text"])
        offset = data["offset"]
        if not data["more"]:
            break
    assert len(parts) == 4 and "�" not in "".join(parts)
    assert "".join(parts) == text and offset == len(text.encode())

    # a writer in the middle of a character: the half is left for the next read
    with _live(fake, task_id).open("ab") as out:
        out.write("€".encode()[:2])
    assert _get(client, url, offset)["text"] == ""
    with _live(fake, task_id).open("ab") as out:
        out.write("€".encode()[2:] + b"\n")
    assert _get(client, url, offset)["text"] == "€\n"


def test_the_task_page_follows_only_a_running_attempt(fake: Any) -> None:
    run_id, task_id, url = _running(fake, stdout="x" * 10 + "é")
    done = fake.task(run_id, "train", stdout="trained\n")
    client = _client(fake)
    page = client.get(f"/ui/runs/DemoFlow/{run_id}/start/{task_id}").text
    pres = re.findall(r'<pre class="log following" id="(\w+)" data-follow="([^"]+)" '
                      r'data-offset="(\d+)">', page)  # fmt: skip
    assert [p[0] for p in pres] == ["stdout", "stderr"]
    assert html.unescape(pres[0][1]) == url + "?attempt=0&stream=stdout"
    assert [int(p[2]) for p in pres] == [12, 0]
    assert "data-poll=" in page  # statuses are still polled: the page reloads when it ends

    # more output does not change the fingerprint (no reload); the end of the attempt does
    status_url = f"/ui/api/runs/DemoFlow/{run_id}/start/{task_id}"
    before = client.get(status_url).json()["fingerprint"]
    with _live(fake, task_id).open("a") as out:
        out.write("more\n")
    assert client.get(status_url).json()["fingerprint"] == before
    fake.meta.finish_attempt(task_id, 0, status=TaskStatus.KILLED)
    assert client.get(status_url).json()["fingerprint"] != before

    finished = client.get(f"/ui/runs/DemoFlow/{run_id}/train/{done}").text
    assert 'id="stdout">trained' in finished
    assert "data-follow" not in finished and "data-poll" not in finished


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("attempt=0&stream=stdout&offset=99", 400, "offset 99 is past the end"),
        ("attempt=0&stream=stdout&offset=-1", 400, "offset '-1' is not valid"),
        ("attempt=0&stream=stdout&offset=abc", 400, "offset 'abc' is not valid"),
        ("attempt=0&stream=stdout&offset=%C2%B2", 400, "offset '²' is not valid"),
        ("attempt=0&stream=stdout&offset=" + "9" * 5000, 400, "is not valid"),
        ("attempt=0&stream=stdin&offset=0", 400, "stream 'stdin' is not a log"),
        ("attempt=0&offset=0", 400, "stream=stdout or stream=stderr"),
        ("stream=stdout", 400, "'attempt' is missing"),
        ("attempt=first&stream=stdout", 400, "attempt 'first' is not valid"),
        ("attempt=3&stream=stderr", 404, "has no attempt 3; it has 0"),
    ],
)
def test_bad_queries_are_a_4xx_json_error(fake: Any, query: str, status: int, says: str) -> None:
    _, _, url = _running(fake, stdout="short\n")
    response = _client(fake).get(f"{url}?{query}")
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == ("not_found" if status == 404 else "bad_request")
    assert says in error["message"]


def test_an_ended_attempt_without_a_log_is_done_and_empty(fake: Any) -> None:
    run_id = fake.run()
    task_id = fake.task(run_id, "start")  # succeeded, wrote nothing
    url = f"/ui/api/runs/DemoFlow/{run_id}/start/{task_id}/logs"
    client = _client(fake)
    assert _get(client, url, 0) == {"text": "", "offset": 0, "more": False, "done": True,
                                    "status": "succeeded"}  # fmt: skip
    response = client.get(url, params={"attempt": 0, "stream": "stdout", "offset": 1})
    assert response.status_code == 400 and "it is empty" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "path",
    [
        "DemoFlow/{run}/start/999999",
        "DemoFlow/{run}/train/{task}",  # the task is in another step
        "OtherFlow/{run}/start/{task}",
        "DemoFlow/999999/start/{task}",
        "DemoFlow/{run}/start/not-a-task",
    ],
)
def test_unknown_tasks_are_a_404(fake: Any, path: str) -> None:
    run_id, task_id, _ = _running(fake, stdout="x\n")
    url = "/ui/api/runs/" + path.format(run=run_id, task=task_id) + "/logs"
    response = _client(fake).get(url, params={"attempt": 0, "stream": "stdout"})
    assert response.status_code == 404, response.text
    assert response.json()["error"]["type"] == "not_found"
    assert "does not exist" in response.json()["error"]["message"]
