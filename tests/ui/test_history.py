"""The UI stays fast with history: 10,000 runs and a run with a 1,000-task foreach, made
through the metadata store directly. The responses are checked for correctness; the times
are measured and written to test-artifacts/ui/timings.txt (never asserted: DESIGN.md keeps
speed targets in benchmarks)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from shipyard.keys import Guard, KeyStore
from shipyard.store import context as _stores
from shipyard.store.blobs import open_blob_store
from shipyard.store.meta import MetaStore
from shipyard.store.records import RunStatus, TaskStatus
from shipyard.store.schema import run_tags, runs
from shipyard.ui import standalone
from shipyard.ui.runs import PAGE_SIZE

RUNS = 10_000
FOREACH = 1_000
TIMINGS = Path(__file__).parents[2] / "test-artifacts" / "ui" / "timings.txt"
GRAPH = {
    "flow": "WideFlow",
    "order": ["start", "work", "join", "end"],
    "steps": {
        "start": {"type": "foreach", "next": ["work"], "foreach": "items"},
        "work": {"type": "linear", "next": ["join"]},
        "join": {"type": "join", "next": ["end"]},
        "end": {"type": "end", "next": []},
    },
}


class History:
    def __init__(self, meta: MetaStore, wide_run: int, work_ids: list[int]) -> None:
        self.meta, self.wide_run, self.work_ids = meta, wide_run, work_ids
        self.client = TestClient(
            standalone(meta, open_blob_store(), Guard(KeyStore(meta))),
            client=("127.0.0.1", 1234),
            base_url="http://127.0.0.1:8002",
        )
        self.timings: list[str] = []

    def get(self, url: str) -> str:
        self.client.get(url)  # warm (templates compiled, connections pooled)
        started = time.perf_counter()
        response = self.client.get(url)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.text
        self.timings.append(f"{elapsed * 1000:8.1f} ms  GET {url}")
        return response.text


def _bulk_runs(meta: MetaStore) -> None:
    """RUNS finished runs of BigFlow, one a second, every tenth tagged ``tenth``."""
    first = meta.create_run("BigFlow", user="ann", params={}, tags=[], graph={}, code_key=None)
    meta.finish_run(first, RunStatus.SUCCEEDED)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "flow_name": "BigFlow",
            "status": (RunStatus.FAILED if i % 3 == 0 else RunStatus.SUCCEEDED).value,
            "user": "ann",
            "created_at": start + timedelta(seconds=i),
            "finished_at": start + timedelta(seconds=i + 1),
            "heartbeat_at": start + timedelta(seconds=i + 1),
            "graph": {},
        }
        for i in range(RUNS - 1)
    ]
    with meta.engine.begin() as conn:
        ids = list(conn.execute(runs.insert().returning(runs.c.run_id), rows).scalars())
        conn.execute(run_tags.insert(), [{"run_id": rid, "tag": "tenth"} for rid in ids[::10]])


def _wide_run(meta: MetaStore) -> tuple[int, list[int]]:
    """A running WideFlow run: start done, FOREACH work tasks of which 10 failed and the
    rest succeeded."""
    run_id = meta.create_run(
        "WideFlow", user="ann", params={"n": FOREACH}, tags=["wide"], graph=GRAPH, code_key=None
    )
    (start,) = meta.create_tasks(run_id, [("start", [], [], None)])
    meta.start_attempt(start, 0, pid=None)
    meta.finish_attempt(start, 0, status=TaskStatus.SUCCEEDED, result={"num_splits": FOREACH})
    items = [
        ("work", [{"step": "start", "index": i, "num_splits": FOREACH}], [start], None)
        for i in range(FOREACH)
    ]
    work = meta.create_tasks(run_id, items)
    for n, task_id in enumerate(work):
        meta.start_attempt(task_id, 0, pid=None)
        failed = n % 100 == 99
        status = TaskStatus.FAILED if failed else TaskStatus.SUCCEEDED
        meta.finish_attempt(task_id, 0, status=status)
    return run_id, work


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    home = tmp_path_factory.mktemp("history") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHIPYARD_HOME", str(home))
        for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
            patch.delenv(name, raising=False)
        meta = MetaStore.open()
        started = time.perf_counter()
        _bulk_runs(meta)
        wide, work = _wide_run(meta)
        made = time.perf_counter() - started
        data = History(meta, wide, work)
        data.timings.append(f"{made * 1000:8.1f} ms  (creating the data)")
        yield data
        TIMINGS.parent.mkdir(parents=True, exist_ok=True)
        TIMINGS.write_text("\n".join(data.timings) + "\n")
        print("\n" + "\n".join(data.timings))
        meta.close()
        _stores.reset()


def test_the_runs_page_of_10000_runs(history: History) -> None:
    text = history.get("/ui/runs")
    shown = [int(p.split("/")[1]) for p in re.findall(r'data-run="([^"]+)"', text)]
    newest = history.meta.list_runs(limit=PAGE_SIZE)
    assert shown == [r.run_id for r in newest] and len(shown) == PAGE_SIZE
    assert shown[0] == history.wide_run  # created last
    assert 'rel="next"' in text and 'rel="prev"' not in text


def test_a_deep_page_with_filters(history: History) -> None:
    text = history.get("/ui/runs?flow=BigFlow&status=failed&tag=tenth&page=5")
    shown = [int(p.split("/")[1]) for p in re.findall(r'data-run="([^"]+)"', text)]
    expected = history.meta.list_runs(
        "BigFlow", tags=["tenth"], status=RunStatus.FAILED, limit=PAGE_SIZE, offset=4 * PAGE_SIZE
    )
    assert shown == [r.run_id for r in expected] and shown
    last = history.get(f"/ui/runs?page={RUNS // PAGE_SIZE + 1}")
    assert len(re.findall(r'data-run="', last)) == 1  # 10,001 runs: one on the last page
    assert 'rel="next"' not in last


def test_the_run_page_of_a_1000_task_foreach(history: History) -> None:
    text = history.get(f"/ui/runs/WideFlow/{history.wide_run}")
    assert "990 / 1000 tasks done · 10 failed" in text
    assert re.search(r'class="node st-failed kind-linear" data-status="failed"', text)
    assert 'class="node st-not-started kind-join"' in text
    # the timeline has one bar per step, not 1,000
    assert text.count('class="bar-link"') == 2 and "one bar per step" in text
    assert 'data-poll="/ui/api/runs/WideFlow/' in text  # running: the page polls


def test_the_step_page_of_a_1000_task_foreach(history: History) -> None:
    text = history.get(f"/ui/runs/WideFlow/{history.wide_run}/work?page=3")
    shown = [int(t) for t in re.findall(r'data-task="(\d+)"', text)]
    assert shown == history.work_ids[200:300]
    assert 'id="task-total">1000<' in text


def test_the_json_the_run_page_polls(history: History) -> None:
    history.get(f"/ui/api/runs/WideFlow/{history.wide_run}")
    data = history.client.get(f"/ui/api/runs/WideFlow/{history.wide_run}").json()
    work = next(s for s in data["steps"] if s["step_name"] == "work")
    assert work["counts"]["failed"] == 10 and work["counts"]["succeeded"] == 990
    assert data["live"] is True


def test_a_run_without_a_graph_still_renders(history: History) -> None:
    text = history.get("/ui/runs/BigFlow/1")
    assert 'id="dag"' in text and "This run has no parameters." in text
