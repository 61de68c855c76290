"""NaN, Infinity and overflowed numbers sent to a real host: 422 naming the field, in a plain
and a batched endpoint, at the top level, in a list and in a nested model; and a reply that
would carry one is a 500 with an error id in valid JSON (before: accepted, then a 500)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from serve.hosts import HostProcess

SERVICE = """
import math
from pydantic import BaseModel
from shipyard.serve import Service, endpoint


class Point(BaseModel):
    x: float


class Geometry(Service):
    @endpoint
    def norm(self, scale: float, weights: list[float], origin: Point) -> float:
        return math.sqrt(scale * sum(weights)) + origin.x

    @endpoint(batch=True, max_batch_size=16)
    def xs(self, points: list[Point]) -> list[float]:
        return [math.sqrt(p.x) for p in points]

    @endpoint
    def ratio(self, a: float, b: float) -> float:
        return a / b if b else math.nan
"""

GOOD = {"scale": 1.0, "weights": [1.0, 3.0], "origin": {"x": 0.5}}
CASES = [
    ('{"scale": %s, "weights": [1], "origin": {"x": 0}}', "scale"),
    ('{"scale": 1, "weights": [1, %s], "origin": {"x": 0}}', "weights.1"),
    ('{"scale": 1, "weights": [1], "origin": {"x": %s}}', "origin.x"),
]
BAD = ["NaN", "Infinity", "-Infinity", "1e999"]


@pytest.fixture(name="host", scope="module")
def host_fixture(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("nonfinite")
    host = HostProcess(home / "home").start()
    try:
        path = home / "geometry_service.py"
        path.write_text(SERVICE)
        host.deploy(f"{path}:Geometry", "geometry")
        yield host
    finally:
        host.stop()


def _post(host: HostProcess, path: str, body: str) -> httpx.Response:
    headers = {"content-type": "application/json"}
    return httpx.post(f"{host.url}/geometry/{path}", content=body, headers=headers, timeout=30)


def test_non_finite_numbers_are_refused_with_422(host: HostProcess) -> None:
    refused = 0
    for template, field in CASES:
        for number in BAD:
            r = _post(host, "norm", template % number)
            error = r.json()["error"]
            assert (r.status_code, error["type"], error["field"]) == (
                422,
                "validation_error",
                field,
            ), r.text
            refused += 1
    assert refused == len(CASES) * len(BAD)
    assert _post(host, "norm", json.dumps(GOOD)).json() == 2.5


def test_a_batched_caller_with_nan_is_refused_alone(host: HostProcess) -> None:
    r = _post(host, "xs", '{"points": [{"x": 4}, {"x": NaN}]}')
    assert (r.status_code, r.json()["error"]["field"]) == (422, "points.1.x")
    assert _post(host, "xs", '{"points": [{"x": 4}, {"x": 9}]}').json() == [2.0, 3.0]


def test_a_nan_reply_is_a_500_with_an_error_id_in_valid_json(host: HostProcess) -> None:
    r = _post(host, "ratio", '{"a": 1, "b": 0}')
    error = json.loads(r.text, parse_constant=_no_constant)["error"]
    assert (r.status_code, error["type"]) == (500, "response_validation")
    assert error["error_id"] and "non-finite" in error["message"]


def _no_constant(name: str) -> Any:
    raise AssertionError(f"the host sent invalid JSON: {name}")
