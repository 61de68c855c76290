"""NaN, Infinity and overflowed numbers: refused in a request (422 naming the field), and a
reply holding one is a 500 with an error id, never invalid JSON."""

from __future__ import annotations

import dataclasses
import json
import math
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from shipyard.serve import Service, ServiceClient, endpoint
from shipyard.serve.schemas import EndpointSchema
from shipyard.serve.service import collect_endpoints


class Point(BaseModel):
    x: float
    tags: list[float] = []


class Shape(BaseModel):
    name: str
    points: list[Point]


@dataclasses.dataclass
class Box:
    side: float


class Label(BaseModel):
    text: str


class Geometry(Service):
    @endpoint
    def area(
        self,
        scale: float = 1.0,
        weights: list[float] = [],  # noqa: B006 - a pydantic default, copied per request
        by_name: dict[str, float] = {},  # noqa: B006
        shape: Shape | None = None,
        box: Box | None = None,
        exact: Decimal = Decimal(1),
    ) -> float:
        return scale

    @endpoint(batch=True, max_batch_size=8)
    def lengths(self, points: list[Point]) -> list[float]:
        return [p.x for p in points]

    @endpoint
    def labels(self, label: Label, factor: float) -> str:
        return label.text

    @endpoint
    def broken(self, where: str) -> Any:
        nan = float("nan")
        return {"top": nan, "list": [1.0, nan], "model": Point(x=nan)}[where]

    @endpoint
    def point(self) -> Point:
        return Point(x=1.0, tags=[2.0, float("inf")])

    @endpoint
    def maybe(self) -> float | None:
        return float("-inf")


_BAD = ["NaN", "Infinity", "-Infinity", "1e999", "-1E+400", "1" + "0" * 400]


@pytest.fixture(name="client", scope="module")
def client_fixture() -> Any:
    with ServiceClient(Geometry) as client:
        yield client


def _post(client: ServiceClient, endpoint: str, body: str) -> tuple[int, dict[str, Any]]:
    reply = client.call(endpoint, body.encode())
    return reply.status, json.loads(reply.body)


@pytest.mark.parametrize("number", _BAD)
@pytest.mark.parametrize(
    ("template", "field"),
    [
        ('{"scale": %s}', "scale"),
        ('{"weights": [1, 2, %s]}', "weights.2"),
        ('{"by_name": {"a": %s}}', "by_name.a"),
        ('{"shape": {"name": "s", "points": [{"x": 1}, {"x": %s}]}}', "shape.points.1.x"),
        ('{"shape": {"name": "s", "points": [{"x": 1, "tags": [%s]}]}}', "shape.points.0.tags.0"),
        ('{"box": {"side": %s}}', "box.side"),
    ],
)
def test_a_non_finite_number_is_refused_naming_its_field(
    client: ServiceClient, number: str, template: str, field: str
) -> None:
    status, body = _post(client, "area", template % number)
    assert status == 422, body
    assert body["error"]["type"] == "validation_error"
    assert body["error"]["field"] == field
    assert "finite number" in body["error"]["message"]


@pytest.mark.parametrize("text", ['"NaN"', '"Infinity"', '"-Infinity"'])
def test_a_non_finite_decimal_is_refused(client: ServiceClient, text: str) -> None:
    status, body = _post(client, "area", '{"exact": ' + text + "}")
    assert (status, body["error"]["field"]) == (422, "exact")


def test_finite_numbers_and_lookalike_strings_still_pass(client: ServiceClient) -> None:
    body = {
        "scale": 1.7976931348623157e308,  # the largest finite float
        "weights": [1e-400, 2.5e300, -0.0],  # an underflow is a plain 0.0
        "shape": {"name": "NaN Infinity 1e999 " + "9" * 400, "points": [{"x": 1e308}]},
    }
    assert client.post("area", body) == (200, 1.7976931348623157e308)
    assert client.post("labels", {"label": {"text": "NaN"}, "factor": 2}) == (200, "NaN")


def test_a_bad_item_is_refused_before_it_joins_a_batch(client: ServiceClient) -> None:
    bodies = [b'{"points": [{"x": 1}]}', b'{"points": [{"x": 2}, {"x": NaN}]}', b'{"points": []}']
    replies = client.call_many("lengths", bodies)
    assert [r.status for r in replies] == [200, 422, 200]
    assert json.loads(replies[1].body)["error"]["field"] == "points.1.x"
    assert json.loads(replies[0].body) == [1.0]


def test_the_users_models_keep_their_own_validation() -> None:
    # the finite validator is built from a copy: the classes themselves are untouched
    EndpointSchema.build(collect_endpoints(Geometry)[0], "Geometry")
    assert Point.__pydantic_complete__
    assert math.isnan(Point.model_validate_json('{"x": NaN}').x)
    assert Point.model_validate({"x": 1}) == Point(x=1.0)


def test_arguments_are_instances_of_the_users_classes() -> None:
    schema = EndpointSchema.build(collect_endpoints(Geometry)[0], "Geometry")
    arguments = schema.parse(b'{"shape": {"name": "s", "points": [{"x": 1}]}, "box": {"side": 2}}')
    assert type(arguments["shape"]) is Shape and type(arguments["shape"].points[0]) is Point
    assert arguments["shape"].points == [Point(x=1.0)] and arguments["box"] == Box(side=2.0)


@pytest.mark.parametrize(
    ("endpoint", "body", "where"),
    [
        ("broken", {"where": "top"}, "the value"),
        ("broken", {"where": "list"}, "1"),
        ("broken", {"where": "model"}, "x"),
        ("point", {}, "tags.1"),
        ("maybe", {}, "the value"),
    ],
)
def test_a_non_finite_reply_is_a_500_with_an_error_id(
    client: ServiceClient,
    capsys: pytest.CaptureFixture[str],
    endpoint: str,
    body: dict[str, Any],
    where: str,
) -> None:
    reply = client.call(endpoint, body)
    # always valid JSON: no NaN or Infinity token ever leaves the worker
    error = json.loads(reply.body, parse_constant=_no_constant)["error"]
    assert (reply.status, error["type"]) == (500, "response_validation")
    assert f"at {where})" in error["message"] and "JSON cannot carry" in error["message"]
    (line,) = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert line["error_id"] == error["error_id"]


def _no_constant(name: str) -> Any:
    raise AssertionError(f"invalid JSON: {name}")
