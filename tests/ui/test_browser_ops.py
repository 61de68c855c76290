"""The host's UI in headless Chromium: the deployments page draws its charts, and an admin
signs in and moves a model alias from the model page (JSON through the admin API). Uses
test_browser's Chromium fixtures over a host (no workers) under uvicorn; screenshots go to
test-artifacts/ui/. Skipped without SHIPYARD_TEST_CHROMIUM (a failure under CI=true)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from test_browser import _shot, browser, page  # noqa: F401 - fixtures used by name
from ui_support import close_host, host_over, seed_service, seed_traffic

from shipyard.registry import Registry

if TYPE_CHECKING:
    from ui_support import UIEnv

    from shipyard.serve.host import Host


@pytest.fixture(scope="module")
def host(ui_env: UIEnv) -> Iterator[Host]:
    made = host_over(ui_env)
    yield made
    close_host(made)


@pytest.fixture(scope="module")
def server(host: Host) -> Iterator[str]:
    """The host's app under uvicorn on a free loopback port (lifespan off: no sampling task,
    so the pages change only when a test samples)."""
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


def test_deployments_page_draws_charts(page: Any, server: str, host: Host) -> None:  # noqa: F811
    seed_service(host, "echo")
    seed_traffic(host, "echo", time.time())
    page.goto(f"{server}/ui/deployments")
    charts = page.locator("#charts-echo figure.chart")
    assert charts.count() == 4
    metrics = charts.evaluate_all("figs => figs.map(f => f.dataset.metric)")
    assert metrics == ["rps", "error_rate", "p50", "p99"]
    line = page.locator('#charts-echo figure[data-metric="rps"] path.line')
    box = line.bounding_box()
    assert box is not None and box["height"] > 20  # 0.5/s then 2/s: a steep rise at the end
    assert page.inner_text('#charts-echo figure[data-metric="rps"] .chart-latest') == "2/s"
    assert page.inner_text('#charts-echo figure[data-metric="error_rate"] .chart-latest') == "5 %"
    assert page.locator("table#deployments a.docs-link").get_attribute("href") == "/echo/docs"
    _shot(page, "deployments-charts")


def test_admin_moves_an_alias_from_the_model_page(
    page: Any,  # noqa: F811
    server: str,
    host: Host,
    ui_env: UIEnv,
) -> None:
    _, admin_key = host.keys.create("browser-admin", ["admin"])
    page.goto(f"{server}/ui/models/uimodel")
    assert page.locator("#read-only").count() == 1 and page.locator("#move-alias").count() == 0
    page.click("#signin-link")
    page.fill("#key", admin_key)
    page.click("form.signin button[type=submit]")
    page.wait_for_url("**/ui/models/uimodel")
    assert page.locator("#admin-badge").count() == 1

    page.fill('#move-alias input[name="alias"]', "canary")
    page.select_option('#move-alias select[name="version"]', "1")
    _shot(page, "alias-form")
    page.click("#move-alias button[type=submit]")
    page.wait_for_selector('table#versions tr[data-version="1"] .alias:text-is("@canary")')
    (summary,) = Registry(ui_env.meta).list_models()
    assert summary.aliases["canary"] == 1
    entry = Registry(ui_env.meta).audit("uimodel")[0]
    assert (entry.action, entry.alias, entry.user) == ("alias.set", "canary", "browser-admin (ui)")
    assert "canary" in page.inner_text("table#audit")
    _shot(page, "alias-moved")
