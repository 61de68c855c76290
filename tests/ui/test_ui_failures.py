"""The run page names each failed task's cause (the attempt's error type, e.g. a Ray
attempt's MemoryKilled), what it means, and the message with the end of the task's log."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from shipyard.flow.failures import CAUSES, MEMORY_KILLED
from shipyard.keys import Guard, KeyStore
from shipyard.store.records import RunStatus, TaskStatus
from shipyard.ui import standalone


def test_the_run_page_names_the_cause_of_each_failed_task_with_its_log_end(fake: Any) -> None:
    run_id = fake.run()
    fake.task(run_id, "start")
    message = (
        "the kernel's OOM killer ended the worker (Ray task 0a1b): its memory cgroup /x allows "
        "400 MiB and reached 399 MiB\nthe last lines of its log:\n  | allocating <1 GB>"
    )
    error = {"type": MEMORY_KILLED, "message": message, "traceback": ""}
    task_id = fake.task(run_id, "work", status=TaskStatus.FAILED, error=error)
    fake.finish(run_id, RunStatus.FAILED)
    keys = KeyStore(fake.meta)
    try:
        app = standalone(fake.meta, fake.blobs, Guard(keys, bind_host="127.0.0.1"))
        client = TestClient(app, client=("127.0.0.1", 1234), base_url="http://127.0.0.1:8002")
        response = client.get(f"/ui/runs/DemoFlow/{run_id}")
    finally:
        keys.close()
    assert response.status_code == 200
    page = response.text
    assert 'id="failures"' in page and f'data-task="{task_id}"' in page
    assert f'title="{CAUSES[MEMORY_KILLED]}">MemoryKilled</span>' in page
    assert "allows 400 MiB and reached 399 MiB\nthe last lines of its log:\n" in page
    assert "  | allocating &lt;1 GB&gt;" in page  # escaped
    assert f'href="/ui/runs/DemoFlow/{run_id}/work/{task_id}"' in page


def test_a_run_without_failures_has_no_failures_section(fake: Any) -> None:
    run_id = fake.run()
    fake.task(run_id, "start")
    fake.finish(run_id)
    keys = KeyStore(fake.meta)
    try:
        app = standalone(fake.meta, fake.blobs, Guard(keys, bind_host="127.0.0.1"))
        client = TestClient(app, client=("127.0.0.1", 1234), base_url="http://127.0.0.1:8002")
        page = client.get(f"/ui/runs/DemoFlow/{run_id}").text
    finally:
        keys.close()
    assert "Steps" in page and 'id="failures"' not in page
