"""The deployment page's Logs panel: the replicas' last lines in time order, a filter by
error id (each error id shown links to it), the JSON it polls to follow, and a log line's
HTML shown as text."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest
from test_browser import _shot, browser, page, server  # noqa: F401 - fixtures used by name

from shipyard.serve.deployments import DeploymentStore, VersionStatus

if TYPE_CHECKING:
    from ui_support import UIEnv

TRACE = 'Traceback (most recent call last):\n  File "svc.py", line 9\nZeroDivisionError: boom\n'


def _event(ts: float, name: str, **fields: object) -> str:
    return json.dumps({"ts": ts, "event": name, **fields})


@pytest.fixture(scope="module", name="logged")
def logged_fixture(ui_env: UIEnv) -> UIEnv:
    """Service ``logged`` recorded as deployed, with two replicas' log files."""
    store = DeploymentStore(ui_env.meta)
    version = store.add_version(
        "logged", entry="svc.py:Logged", code_key="0" * 64, replicas=2, env={}, pins={},
        created_by="tester",
    )  # fmt: skip
    store.mark("logged", version.version, VersionStatus.LIVE)
    logs = ui_env.home / "serve" / "logs" / "logged"
    logs.mkdir(parents=True)
    (logs / "v1-1.log").write_text(
        "\n".join(
            [
                _event(1000, "ready", pid=11),
                "<script>alert('x')</script>",  # user code printed HTML
                _event(
                    1002,
                    "endpoint_error",
                    endpoint="divide",
                    error="ZeroDivisionError: boom",
                    error_id="aaaa1111bbbb2222",
                    traceback=TRACE,
                ),  # fmt: skip
            ]
        )
        + "\n"
    )
    (logs / "v1-2.log").write_text(
        "\n".join(
            [
                _event(1001, "ready", pid=12),
                _event(
                    1003,
                    "endpoint_error",
                    endpoint="divide",
                    error="ValueError: other",
                    error_id="cccc3333dddd4444",
                    traceback="Traceback...\nValueError: other\n",
                ),  # fmt: skip
            ]
        )
        + "\n"
    )
    return ui_env


def _logs(html: str) -> str:
    found = re.search(r'<pre class="log service-logs[^>]*>(.*?)</pre>', html, re.S)
    assert found is not None, html
    return found.group(1)


def test_the_page_shows_the_replicas_lines_in_time_order(logged: UIEnv) -> None:
    shown = logged.client().get("/ui/deployments/logged")
    assert shown.status_code == 200
    logs = _logs(shown.text)
    order = [
        logs.index(text) for text in ("ready  pid=11", "ready  pid=12", "aaaa1111", "cccc3333")
    ]
    assert order == sorted(order)
    assert "v1 r1" in logs and "v1 r2" in logs
    assert "    ZeroDivisionError: boom" in logs  # the traceback, indented under its event
    # each error id links to the page filtered by it
    assert '<a class="error-id" href="?error_id=aaaa1111bbbb2222#logs">aaaa1111bbbb2222</a>' in logs


def test_a_log_lines_html_is_shown_as_text(logged: UIEnv) -> None:
    shown = logged.client().get("/ui/deployments/logged")
    assert "<script>alert" not in shown.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in _logs(shown.text)


def test_the_error_id_filter_keeps_that_failure(logged: UIEnv) -> None:
    client = logged.client()
    shown = client.get("/ui/deployments/logged?error_id=cccc3333dddd4444")
    logs = _logs(shown.text)
    assert "ValueError: other" in logs and "Traceback..." in logs
    assert "aaaa1111" not in logs and "ready" not in logs and "script" not in logs
    assert 'value="cccc3333dddd4444"' in shown.text and 'id="logs-all"' in shown.text

    none = client.get("/ui/deployments/logged?error_id=eeee5555ffff6666")
    assert none.status_code == 200 and _logs(none.text) == ""
    assert "No error id <code>eeee5555ffff6666</code> in the logs of logged" in none.text
    assert str(logged.home / "serve" / "logs" / "logged") in none.text
    assert client.get("/ui/deployments/logged?error_id=" + "x" * 65).status_code == 400


def test_the_panel_follows_what_is_written_later(logged: UIEnv) -> None:
    client = logged.client()
    shown = client.get("/ui/deployments/logged")
    found = re.search(r'data-follow-logs="([^"]+)" data-cursor="([^"]*)"', shown.text)
    assert found is not None
    url, cursor = found.groups()
    assert url == "/ui/api/deployments/logged/logs"
    nothing = client.get(url, params={"after": cursor}).json()
    assert nothing["lines"] == [] and nothing["cursor"] == cursor

    with (logged.home / "serve" / "logs" / "logged" / "v1-2.log").open("a") as file:
        file.write("<b>printed later</b>\n")
    later = client.get(url, params={"after": cursor}).json()
    assert [line["head"] for line in later["lines"]] == [
        " " * 23 + "  v1 r2  | <b>printed later</b>"
    ]
    assert later["cursor"] != cursor  # JSON: the page's script adds it as text

    bad = client.get(url, params={"after": "../x:1"})
    assert bad.status_code == 400 and "bad logs cursor" in bad.json()["error"]["message"]
    assert client.get("/ui/api/deployments/nope/logs").status_code == 404


def test_a_service_without_logs_here_says_where_they_would_be(logged: UIEnv) -> None:
    store = DeploymentStore(logged.meta)
    version = store.add_version(
        "elsewhere", entry="svc.py:E", code_key="0" * 64, replicas=1, env={}, pins={},
        created_by="tester",
    )  # fmt: skip
    store.mark("elsewhere", version.version, VersionStatus.LIVE)
    shown = logged.client().get("/ui/deployments/elsewhere")
    assert shown.status_code == 200 and _logs(shown.text) == ""
    assert "No logs of elsewhere under" in shown.text


def test_the_panel_follows_in_a_browser_and_links_error_ids(
    page: Any,  # noqa: F811
    server: str,  # noqa: F811
    logged: UIEnv,
) -> None:
    page.goto(f"{server}/ui/deployments/logged")
    logs = page.locator("pre#service-logs")
    assert "ready  pid=11" in logs.text_content()
    page.evaluate("window.notReloaded = true")
    with (logged.home / "serve" / "logs" / "logged" / "v1-1.log").open("a") as file:
        file.write("<i>followed</i>\n")
    page.wait_for_selector('pre#service-logs:has-text("followed")', timeout=15_000)
    assert logs.text_content().endswith("v1 r1  | <i>followed</i>\n")  # text, not HTML
    assert page.locator("pre#service-logs i").count() == 0
    assert page.evaluate("window.notReloaded") is True
    _shot(page, "deployment-logs")

    page.locator('a.error-id:has-text("aaaa1111bbbb2222")').click()
    page.wait_for_url("**/deployments/logged?error_id=aaaa1111bbbb2222#logs")
    assert "ZeroDivisionError: boom" in logs.text_content()
    assert "followed" not in logs.text_content()
