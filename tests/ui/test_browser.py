"""The UI in a real headless Chromium (Debian's ``chromium``, driven by Playwright's Python
API): open each page of a small real run, check what is shown against the store, follow the
links, watch a page refresh itself while a run finishes, and keep screenshots in
test-artifacts/ui/. Skipped without SHIPYARD_TEST_CHROMIUM (a failure under CI=true)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from shipyard.store.records import RunStatus
from support.servers import server_url

if TYPE_CHECKING:
    from ui_support import UIEnv


SHOTS = Path(__file__).parents[2] / "test-artifacts" / "ui"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(ui_env: UIEnv) -> Iterator[str]:
    """The standalone UI under uvicorn on a free loopback port, in a thread."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        ui_env.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "the UI server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser(server: str) -> Iterator[Any]:
    executable = server_url("SHIPYARD_TEST_CHROMIUM")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    opened.on(
        "console",
        lambda msg: (
            problems.append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning")
            else None
        ),
    )
    opened.problems = problems
    yield opened
    context.close()
    assert not problems, problems  # no script error, no CSP violation, no missing asset


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_walk_through_a_run(page: Any, server: str, ui_env: UIEnv) -> None:
    run = ui_env.runs[0]
    page.goto(f"{server}/ui/runs")
    rows = page.locator("table#runs tbody tr")
    assert rows.count() == 2
    assert [rows.nth(i).get_attribute("data-run") for i in range(2)] == [
        r.pathspec for r in reversed(ui_env.runs)
    ]
    assert page.locator("table#runs .status").all_inner_texts() == ["succeeded", "succeeded"]
    _shot(page, "runs")

    page.click(f'a.run-link:text-is("{run.pathspec}")')
    page.wait_for_url(f"**/ui/runs/{run.pathspec}")
    nodes = page.locator("svg#dag g.node")
    assert nodes.count() == 4
    assert {nodes.nth(i).get_attribute("data-status") for i in range(4)} == {"succeeded"}
    assert page.locator("svg#dag path.edge").count() == 3
    assert page.locator("svg#timeline g.bar").count() == len(ui_env.meta.list_tasks(run.id))
    assert page.locator("svg#dag").bounding_box()["height"] > 100  # drawn, not collapsed
    assert page.inner_text("table#params").count("alpha") == 1
    _shot(page, "run")

    page.click('svg#dag a[data-step="work"]')
    page.wait_for_url(f"**/ui/runs/{run.pathspec}/work")
    tasks = ui_env.meta.list_tasks(run.id, "work")
    shown = page.locator("table#tasks tbody tr")
    assert [int(shown.nth(i).get_attribute("data-task")) for i in range(shown.count())] == [
        t.task_id for t in tasks
    ]
    _shot(page, "step")

    flaky = next(t for t in tasks if t.foreach_stack[-1]["index"] == 1)
    page.click(f'table#tasks a:text-is("{flaky.task_id}")')
    page.wait_for_url(f"**/work/{flaky.task_id}")
    assert page.locator("table#attempts tbody tr").count() == 2
    assert "flaky item 2" in page.inner_text("table#attempts")
    page.click("details.traceback summary")
    assert "Traceback (most recent call last)" in page.inner_text("details.traceback pre")
    assert "square of 2 is 4" in page.inner_text("pre#stdout")
    names = page.locator("table#artifacts tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.artifact)"
    )
    assert names == [a.name for a in ui_env.meta.list_artifacts(flaky.task_id)]
    _shot(page, "task")

    page.click("p.crumbs a >> nth=1")  # back to the run
    page.wait_for_url(f"**/ui/runs/{run.pathspec}")


def test_models_and_lineage(page: Any, server: str, ui_env: UIEnv) -> None:
    from shipyard.registry import Registry

    versions = Registry(ui_env.meta, blobs=ui_env.blobs, home=ui_env.home).versions("uimodel")
    page.goto(f"{server}/ui/models")
    assert page.locator("table#models tbody tr").count() == 1
    _shot(page, "models")
    page.click('a:text-is("uimodel")')
    page.wait_for_url("**/ui/models/uimodel")
    rows = page.locator("table#versions tbody tr")
    assert [rows.nth(i).get_attribute("data-version") for i in range(rows.count())] == [
        str(v.version) for v in reversed(versions)
    ]
    _shot(page, "model")
    page.click(f'a.lineage:text-is("{versions[0].lineage}")')
    page.wait_for_url(f"**/ui/runs/{versions[0].pathspec}")
    assert page.locator("h1").inner_text().startswith(versions[0].pathspec)


def test_deployments_and_not_found(page: Any, server: str) -> None:
    page.goto(f"{server}/ui/deployments")
    assert page.locator("h1").inner_text() == "Deployments"
    _shot(page, "deployments")
    response = page.goto(f"{server}/ui/runs/UiFlow/999999")
    assert response is not None and response.status == 404
    assert "does not exist" in page.inner_text("#error-message")
    page.problems.clear()  # the browser logs the 404 itself
    _shot(page, "not-found")


def test_a_running_run_refreshes_itself(page: Any, server: str, ui_env: UIEnv) -> None:
    run_id = ui_env.meta.create_run(
        "LiveFlow", user="ann", params={}, tags=[], graph={}, code_key=None
    )
    page.goto(f"{server}/ui/runs?flow=LiveFlow")
    assert page.locator("body").get_attribute("data-poll") == "/ui/api/runs?flow=LiveFlow"
    assert page.inner_text("table#runs .status") == "running"
    ui_env.meta.finish_run(run_id, RunStatus.SUCCEEDED)
    page.wait_for_selector("table#runs .status.st-succeeded", timeout=10_000)
    assert page.locator("body").get_attribute("data-poll") is None
    _shot(page, "runs-live")
