"""Every UI route over HTTP (Starlette's TestClient as a loopback client), checked against
the store: runs, run, step, task, models, deployments, the JSON the pages poll, and unknown
ids (a 404 page, never a 500)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from shipyard.store.records import TaskStatus
from shipyard.ui.app import SECURITY_HEADERS

if TYPE_CHECKING:
    from ui_support import UIEnv


def _run_url(env: UIEnv, index: int = 0) -> str:
    return f"/ui/runs/{env.runs[index].pathspec}"


def test_root_redirects_to_the_runs_page(ui_env: UIEnv) -> None:
    client = ui_env.client()
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/ui/runs"
    assert client.get("/ui/", follow_redirects=False).headers["location"] == "/ui/runs"


def test_runs_page_lists_runs_newest_first_with_status_and_tags(ui_env: UIEnv) -> None:
    response = ui_env.client().get("/ui/runs")
    assert response.status_code == 200
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    shown = re.findall(r'data-run="([^"]+)"', response.text)
    assert shown == [r.pathspec for r in reversed(ui_env.runs)]
    assert response.text.count('class="status st-succeeded"') == 2
    assert ">ui-test</a>" in response.text and ">second</a>" in response.text
    assert "data-poll=" not in response.text  # nothing runs: no polling


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?tag=second", [1]),
        ("?tag=ui-test", [0]),
        ("?tag=nope", []),
        ("?flow=UiFlow&status=succeeded", [1, 0]),
        ("?status=failed", []),
        ("?flow=OtherFlow", []),
    ],
)
def test_runs_page_filters(ui_env: UIEnv, query: str, expected: list[int]) -> None:
    response = ui_env.client().get("/ui/runs" + query)
    assert response.status_code == 200
    shown = re.findall(r'data-run="([^"]+)"', response.text)
    assert shown == [ui_env.runs[i].pathspec for i in expected]
    if not expected:
        assert 'id="no-runs"' in response.text


@pytest.mark.parametrize("query", ["?status=bogus", "?page=0", "?page=x", "?page=99999999999"])
def test_runs_page_rejects_bad_filters_with_a_400_page(ui_env: UIEnv, query: str) -> None:
    response = ui_env.client().get("/ui/runs" + query)
    assert response.status_code == 400
    assert 'id="error-message"' in response.text


def test_runs_json_matches_the_page(ui_env: UIEnv) -> None:
    data = ui_env.client().get("/ui/api/runs?tag=second").json()
    assert data["live"] is False and data["has_next"] is False
    assert [r["pathspec"] for r in data["runs"]] == [ui_env.runs[1].pathspec]
    assert data["fingerprint"] == f"{ui_env.runs[1].id}:succeeded"
    bad = ui_env.client().get("/ui/api/runs?status=bogus")
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "bad_request"


def test_run_page_draws_the_dag_timeline_parameters_and_tags(ui_env: UIEnv) -> None:
    run = ui_env.runs[0]
    response = ui_env.client().get(_run_url(ui_env))
    assert response.status_code == 200
    text = response.text
    # the DAG: one box per step, coloured by status, with the foreach's task count
    for step in ("start", "work", "join", "end"):
        assert f'data-step="{step}"' in text
    assert text.count('class="node st-succeeded') == 4
    assert "3 / 3 tasks done" in text
    edges = re.findall(r'data-from="(\w+)" data-to="(\w+)"', text)
    assert sorted(edges) == [("join", "end"), ("start", "work"), ("work", "join")]
    # the timeline: one bar per task (6), each linking to its task
    tasks = ui_env.meta.list_tasks(run.id)
    assert len(tasks) == 6
    for task in tasks:
        assert f'href="/ui/runs/{run.pathspec}/{task.step_name}/{task.task_id}"' in text
    assert text.count('class="bar st-succeeded"') == 6
    # parameters and tags
    assert re.search(r"<td>alpha</td><td><code>0.5</code></td>", text)
    assert ">ui-test</a>" in text
    assert 'id="task-count">6<' in text


def test_run_json(ui_env: UIEnv) -> None:
    run = ui_env.runs[0]
    data = ui_env.client().get(f"/ui/api/runs/{run.pathspec}").json()
    assert data["status"] == "succeeded" and data["live"] is False
    work = next(s for s in data["steps"] if s["step_name"] == "work")
    assert work["tasks"] == 3 and work["counts"]["succeeded"] == 3


def test_step_page_lists_the_foreach_tasks(ui_env: UIEnv) -> None:
    run = ui_env.runs[0]
    response = ui_env.client().get(f"{_run_url(ui_env)}/work")
    assert response.status_code == 200
    tasks = ui_env.meta.list_tasks(run.id, "work")
    shown = [int(t) for t in re.findall(r'data-task="(\d+)"', response.text)]
    assert shown == [t.task_id for t in tasks]
    assert 'id="task-total">3<' in response.text
    assert "foreach over" not in response.text  # work is the body, start is the foreach
    start = ui_env.client().get(f"{_run_url(ui_env)}/start").text
    assert "foreach over <code>items</code>" in start


def test_task_page_shows_attempts_errors_artifacts_and_logs(ui_env: UIEnv) -> None:
    run = ui_env.runs[0]
    flaky = next(
        t for t in ui_env.meta.list_tasks(run.id, "work") if t.foreach_stack[-1]["index"] == 1
    )
    url = f"{_run_url(ui_env)}/work/{flaky.task_id}"
    response = ui_env.client().get(url)
    assert response.status_code == 200
    text = response.text
    attempts = ui_env.meta.list_attempts(flaky.task_id)
    assert [a.status for a in attempts] == [TaskStatus.FAILED, TaskStatus.SUCCEEDED]
    assert re.findall(r'<tr data-attempt="(\d)"', text) == ["0", "1"]
    assert "ValueError" in text and "flaky item 2" in text
    assert 'class="traceback" data-attempt="0"' in text and "Traceback (most recent" in text
    for artifact in ui_env.meta.list_artifacts(flaky.task_id):
        assert f'data-artifact="{artifact.name}"' in text
        assert f"<code>{artifact.type_name}</code>" in text
    assert "square of 2 is 4" in text and "stderr line 2" in text
    # the first attempt's logs, chosen by query
    first = ui_env.client().get(url + "?attempt=0").text
    assert "square of 2 is 4" not in first
    assert ui_env.client().get(url + "?attempt=7").status_code == 404


def test_task_json(ui_env: UIEnv) -> None:
    run = ui_env.runs[0]
    task = ui_env.meta.list_tasks(run.id, "end")[0]
    data = ui_env.client().get(f"/ui/api/runs/{run.pathspec}/end/{task.task_id}").json()
    assert data["status"] == "succeeded" and data["live"] is False
    assert data["attempts"] == [{"attempt": 0, "status": "succeeded"}]


def test_models_pages_show_versions_aliases_metrics_and_lineage(ui_env: UIEnv) -> None:
    from shipyard.registry import Registry

    registry = Registry(ui_env.meta, blobs=ui_env.blobs, home=ui_env.home)
    registry.set_alias("uimodel", 1, "prod")
    versions = registry.versions("uimodel")
    client = ui_env.client()
    listing = client.get("/ui/models")
    assert listing.status_code == 200
    assert 'data-model="uimodel"' in listing.text and "@prod → 1" in listing.text
    page = client.get("/ui/models/uimodel")
    assert page.status_code == 200
    assert re.findall(r'<tr data-version="(\d+)"', page.text) == ["2", "1"]
    assert "total" in page.text and "alpha" in page.text
    assert re.search(r'class="num best" data-metric="alpha">0.75<', page.text)
    for version in versions:
        task = version.pathspec
        assert f'href="/ui/runs/{task}"' in page.text
        assert client.get(f"/ui/runs/{task}").status_code == 200  # lineage leads somewhere
    assert "alias.set" in page.text


def test_deployments_pages_read_the_database_outside_the_host(ui_env: UIEnv) -> None:
    from shipyard.serve.deployments import DeploymentStore, VersionStatus

    client = ui_env.client()
    empty = client.get("/ui/deployments")
    assert empty.status_code == 200 and 'id="no-deployments"' in empty.text
    store = DeploymentStore(ui_env.meta)
    version = store.add_version(
        "ranker",
        entry="svc.py:Ranker",
        code_key="0" * 64,
        replicas=2,
        env={"SECRET": "x"},
        pins={"uimodel@prod": "uimodel:1"},
        created_by="ann",
    )
    store.mark("ranker", version.version, VersionStatus.LIVE)
    listing = client.get("/ui/deployments")
    assert 'data-service="ranker"' in listing.text and 'id="desired-note"' in listing.text
    page = client.get("/ui/deployments/ranker")
    assert page.status_code == 200
    assert 'data-version="1"' in page.text and "st-live" in page.text
    assert "uimodel@prod = uimodel:1" in page.text and "SECRET" not in page.text


@pytest.mark.parametrize(
    "path",
    [
        "/ui/runs/UiFlow/999999",
        "/ui/runs/NoFlow/1",
        "/ui/runs/UiFlow/abc",
        "/ui/runs/UiFlow/-1",
        "/ui/runs/UiFlow/99999999999999999999999999",
        "/ui/runs/UiFlow/%C2%B2",  # a digit to str.isdigit, not to int()
        "/ui/runs/UiFlow/" + "9" * 5000,  # more digits than int() parses
        "/ui/runs/UiFlow/{run}/nostep",
        "/ui/runs/UiFlow/{run}/work/abc",
        "/ui/runs/UiFlow/{run}/work/999999",
        "/ui/runs/UiFlow/{run}/start/{work_task}",  # a task of another step
        "/ui/runs/UiFlow/{other}/work/{work_task}",  # a task of another run
        "/ui/runs/UiFlow/{run}/work/99999999999999999999999999",
        "/ui/models/nomodel",
        "/ui/models/Not%20A%20Name",
        "/ui/deployments/nothing",
        "/ui/api/runs/UiFlow/999999",
        "/ui/api/runs/UiFlow/{run}/work/999999",
        "/ui/no/such/page",
        "/ui/static/nothing.css",
    ],
)
def test_unknown_ids_are_a_404_page(ui_env: UIEnv, path: str) -> None:
    run = ui_env.runs[0]
    work_task = ui_env.meta.list_tasks(run.id, "work")[0].task_id
    url = path.format(run=run.id, other=ui_env.runs[1].id, work_task=work_task)
    response = ui_env.client().get(url)
    assert response.status_code == 404, response.text
    if "/api/" in url:
        assert response.json()["error"]["type"] == "not_found"
    elif "/static/" not in url:
        assert 'id="error-message"' in response.text


def test_only_reads_are_allowed(ui_env: UIEnv) -> None:
    client = ui_env.client()
    assert client.post("/ui/runs").status_code == 405
    assert client.delete(_run_url(ui_env)).status_code == 405
