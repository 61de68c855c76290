"""A running task's page in headless Chromium follows its logs: a line appended to the live
file appears without a reload, and when the attempt ends the page reloads once into its
finished state and stops polling. Uses test_browser's fixtures; the running task is written
by tests/support/fakes.py. Skipped without SHIPYARD_TEST_CHROMIUM (a failure under CI=true)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from test_browser import _shot, browser, page, server  # noqa: F401 - fixtures used by name

from shipyard.store.records import TaskStatus
from support.fakes import FakeRuns

if TYPE_CHECKING:
    from ui_support import UIEnv


@pytest.fixture
def fake(ui_env: UIEnv) -> Iterator[Any]:
    """FakeRuns over the served SHIPYARD_HOME (ui_env keeps it set for the module)."""
    runs = FakeRuns(ui_env.home)
    yield runs
    runs.close()


def test_a_running_task_page_follows_its_log(page: Any, server: str, fake: Any) -> None:  # noqa: F811
    run_id = fake.run("LogFlow")
    task_id = fake.task(run_id, "start", status=None, stdout="line 1\n")
    live = fake.meta.get_task(task_id).live_log(fake.home, 0, "stdout")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    page.goto(f"{server}/ui/runs/LogFlow/{run_id}/start/{task_id}")
    stdout = page.locator("pre#stdout")
    assert stdout.text_content() == "line 1\n"
    assert stdout.get_attribute("data-follow-state") == "following"
    page.evaluate("window.notReloaded = true")
    with live.open("a") as out:
        out.write("line 2 <b>not markup</b>\n")
    page.wait_for_selector('pre#stdout:has-text("line 2")', timeout=10_000)
    assert stdout.text_content() == "line 1\nline 2 <b>not markup</b>\n"  # text, not HTML
    assert page.locator("pre#stdout b").count() == 0
    assert page.evaluate("window.notReloaded") is True
    assert int(stdout.get_attribute("data-offset")) == live.stat().st_size
    assert any("/logs?attempt=0&stream=stdout&offset=7" in url for url in requests)
    _shot(page, "task-following")

    # the attempt ends: the log becomes a blob, the page reloads once and stops polling
    key = fake.put_bytes(live.read_bytes() + b"line 3\n")
    fake.meta.finish_attempt(task_id, 0, status=TaskStatus.SUCCEEDED, stdout_key=key)
    live.unlink()
    page.wait_for_selector("pre#stdout:not([data-follow])", timeout=10_000)
    assert stdout.text_content().endswith("line 2 <b>not markup</b>\nline 3\n")
    assert page.locator("body").get_attribute("data-poll") is None
    fake.finish(run_id)
