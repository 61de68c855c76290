"""The admission fails open: when limits or budgets cannot be checked, the request goes
through, the failure is logged and counted in ``shipyard_gateway_admission_failures_total``
(what to alert on), and the usage is still recorded."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest
from gateway_fakes import Running, Upstreams, config_text

from shipyard.gateway import Denied, Route
from shipyard.keys import KeyRecord


class SharedLimits:
    """An Admission (the plugin seam) whose counters live in a shared store that is down."""

    def __init__(self) -> None:
        self.recorded: list[tuple[str, object]] = []

    def admit(self, key: KeyRecord, route: Route, *, estimated_tokens: int) -> Denied | None:
        if route.name == "backup":
            return Denied(429, "rate_limit_exceeded", "over the limit", retry_after=1)
        raise ConnectionError("the shared limits store at 127.0.0.1:6390 refused the connection")

    def record(self, key: KeyRecord | None, route: Route, **kw: object) -> None:
        self.recorded.append((route.name, kw["status"]))


def failures(gw: Running) -> dict[str, float]:
    text = gw.get("/metrics").text
    found = re.findall(r'shipyard_gateway_admission_failures_total\{route="([^"]+)"\} (\S+)', text)
    return {route: float(value) for route, value in found}


def test_a_failing_admission_lets_the_request_through_and_is_counted(
    ups: Upstreams, serve_gateway: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    admission = SharedLimits()
    gw = serve_gateway(config_text(ups), admission=admission)
    assert failures(gw) == {}
    message = [{"role": "user", "content": "q"}]
    for _ in range(2):
        r = gw.post("/v1/chat/completions", {"model": "chat", "messages": message})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "a:q"
    files = gw.get("/gateway/files/x", headers=gw.auth)
    assert files.status_code == 200
    assert failures(gw) == {"chat": 2.0, "files": 1.0}
    assert "admission failed for route 'chat': the request goes through" in caplog.text
    assert "127.0.0.1:6390 refused the connection" in caplog.text  # the traceback is logged
    # an admission that works keeps refusing, and is not counted as a failure
    denied = gw.post("/v1/chat/completions", {"model": "backup", "messages": message})
    assert denied.status_code == 429 and "backup" not in failures(gw)
    assert admission.recorded == [("chat", 200), ("chat", 200), ("files", 200), ("backup", 429)]


def test_the_log_line_names_the_route_at_error_level(
    ups: Upstreams, serve_gateway: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="shipyard.gateway")
    gw = serve_gateway(config_text(ups), admission=SharedLimits())
    gw.post("/v1/embeddings", {"model": "embed", "input": "x"})
    [entry] = [r for r in caplog.records if "admission failed" in r.getMessage()]
    assert entry.levelno == logging.ERROR and "'embed'" in entry.getMessage()
    assert entry.exc_info is not None and entry.exc_info[0] is ConnectionError
