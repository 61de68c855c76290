"""The schedules page in headless Chromium: an admin signs in, pauses a schedule with a note
and resumes it with the page's buttons (JSON through ui.js, no console errors). Uses
test_browser's Chromium fixtures over a host (no workers) under uvicorn, over the schedules
of test_schedules_pages; screenshots go to test-artifacts/ui/. Skipped without
SHIPYARD_TEST_CHROMIUM (a failure under CI=true)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from test_browser import _shot, browser, page  # noqa: F401 - fixtures used by name
from test_schedules_pages import env, host  # noqa: F401 - fixtures used by name

from shipyard.schedules.store import ScheduleStore

if TYPE_CHECKING:
    from ui_support import UIEnv

    from shipyard.serve.host import Host


@pytest.fixture(scope="module")
def server(host: Host) -> Iterator[str]:  # noqa: F811
    """The host's app under uvicorn on a free loopback port (lifespan off)."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(host, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off")  # fmt: skip
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "the host did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(10)


def test_admin_pauses_and_resumes_from_the_schedule_page(
    page: Any,  # noqa: F811
    server: str,
    host: Host,  # noqa: F811
    env: UIEnv,  # noqa: F811
) -> None:
    store = ScheduleStore(env.meta)
    _, admin_key = host.keys.create("browser-admin", ["admin"])
    page.goto(f"{server}/ui/schedules/ranker")
    assert page.locator("#read-only").count() == 1 and page.locator("#pause").count() == 0
    page.click("#signin-link")
    page.fill("#key", admin_key)
    page.click("form.signin button[type=submit]")
    page.wait_for_url("**/ui/schedules/ranker")
    assert page.locator("#admin-badge").count() == 1

    page.fill('#pause input[name="note"]', "feature store migration, back at 14:00")
    _shot(page, "schedule-pause-form")
    page.click("#pause button[type=submit]")
    page.wait_for_selector("#resume")
    record = store.get("ranker")
    assert record.paused and record.note == "feature store migration, back at 14:00"
    assert record.paused_by == "browser-admin (ui)"
    assert "feature store migration" in page.inner_text("#pause-note")
    _shot(page, "schedule-paused")

    page.on("dialog", lambda dialog: dialog.accept())  # "Resume ranker? ..."
    page.click("#resume button[type=submit]")
    page.wait_for_selector("#pause")
    assert not store.get("ranker").paused
    page.goto(f"{server}/ui/schedules")
    assert page.locator("#paused").count() == 0
    assert page.locator('#schedules tr[data-schedule="ranker"] td:first-child .status').count() == 0
