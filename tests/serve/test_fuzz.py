"""Fuzz every endpoint of a deployed service through its own OpenAPI document (schemathesis).

The document is built in process from ``fuzz_service.Fuzz`` at import, so that each operation
is its own test item; ``test_the_host_serves_that_document`` checks that the real host serves
exactly that document. Requests go to a real ``shipyard serve`` on 127.0.0.1: valid
(positive) and invalid (negative) bodies, plus schemathesis's coverage cases (boundaries,
wrong types, missing and extra fields), at least ``EXAMPLES`` per operation. Every response
must pass ``CHECKS``: no 5xx, a documented status, content type and headers, a body matching
the documented schema, valid data accepted, and every error in the one documented shape.

It found three mismatches, now fixed and kept as regression tests: values of the wrong JSON
type were coerced (lax validation), an empty body was accepted where the document said one
is required, and an inf/nan return value went out as ``null``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import requests
import schemathesis
from fuzz_service import Fuzz
from hosts import HostProcess
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import CheckContext, CheckFunction, not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shipyard.serve import Service, endpoint
from shipyard.serve.testing import ServiceClient

Case = schemathesis.Case[Any]

SERVICE = "fuzz"
EXAMPLES = 100

with ServiceClient(Fuzz, name=SERVICE) as _client:
    DOCUMENT: dict[str, Any] = json.loads(json.dumps(_client.openapi()))

schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(max_examples=EXAMPLES, no_shrink=True, deterministic=True)

# the error type each documented status carries (schemas.py's docstring)
ERROR_TYPES = {400: {"invalid_json"}, 422: {"validation_error"}}


def error_shape(ctx: CheckContext, response: schemathesis.Response, case: Case) -> None:
    """Every non-2xx body is ``{"error": {"type", "message", ...}}`` and shows no internals."""
    if 200 <= response.status_code < 300:
        return
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, f"not an error body: {body!r}"
    error = body["error"]
    assert isinstance(error, dict), f"'error' is not an object: {body!r}"
    assert isinstance(error.get("type"), str) and error["type"], f"no error type: {body!r}"
    assert isinstance(error.get("message"), str) and error["message"], f"no message: {body!r}"
    for key in ("field", "error_id"):
        assert isinstance(error.get(key, ""), str), f"{key} is not a string: {body!r}"
    expected = ERROR_TYPES.get(response.status_code)
    assert expected is None or error["type"] in expected, (
        f"status {response.status_code} with error type {error['type']!r}, expected {expected}"
    )
    assert "Traceback" not in response.text, response.text


CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    positive_data_acceptance,
    error_shape,
]
REJECTION_CHECKS: list[CheckFunction] = [not_a_server_error, negative_data_rejection, error_shape]

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    process = HostProcess(tmp_path_factory.mktemp("fuzz-host")).start()
    try:
        process.deploy(f"{Path(__file__).with_name('fuzz_service.py')}:Fuzz", SERVICE)
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def test_the_host_serves_that_document(host: HostProcess) -> None:
    served = httpx.get(f"{host.url}/{SERVICE}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == DOCUMENT
    assert set(_labels()) == {f"POST {path}" for path in DOCUMENT["paths"]}


@schema.parametrize()
@FUZZ_SETTINGS
def test_fuzz(case: Case, host: HostProcess, session: requests.Session) -> None:
    case.call_and_validate(base_url=host.url, session=session, checks=CHECKS, timeout=30)


def test_every_operation_gets_enough_examples() -> None:
    # the examples test_fuzz draws for each operation under FUZZ_SETTINGS (it adds the
    # explicit and coverage cases): drawn here without a host, so that this does not depend
    # on test_fuzz having run first in the same session
    drawn: Counter[str] = Counter()
    for label in _labels():
        operation = schema["/" + label.split(" /", 1)[1]]["POST"]

        @FUZZ_SETTINGS
        @given(operation.as_strategy())
        def draw(case: Case) -> None:
            drawn[case.operation.label] += 1

        draw()
    assert set(drawn) == set(_labels()), drawn
    assert all(n >= EXAMPLES for n in drawn.values()), drawn


@schema.parametrize()
@FUZZ_SETTINGS
def test_fuzz_invalid_data_is_rejected(
    case: Case, host: HostProcess, session: requests.Session
) -> None:
    case.call_and_validate(base_url=host.url, session=session, checks=REJECTION_CHECKS, timeout=30)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("primitives", {"text": "", "count": 0, "ratio": 0.0, "flag": 0}),
        ("primitives", {"text": "", "count": "5", "ratio": 0.0, "flag": True}),
        ("greet", {"name": "", "delay_ms": False}),
        ("constrained", {"code": "aa", "score": 0.0, "n": 1, "items": [False]}),
    ],
)
def test_a_value_of_the_wrong_json_type_is_rejected(
    host: HostProcess, path: str, body: dict[str, Any]
) -> None:
    r = host.post(f"/{SERVICE}/{path}", body)
    assert r.status_code == 422, f"{r.status_code} {r.text}"
    assert r.json()["error"]["type"] == "validation_error"


@pytest.mark.parametrize(
    "path",
    [
        "optional",  # every parameter has a default: no body needed
        "primitives",  # has required parameters: an empty body is a 422
    ],
)
def test_the_document_says_whether_a_body_is_required(host: HostProcess, path: str) -> None:
    required = DOCUMENT["paths"][f"/{SERVICE}/{path}"]["post"]["requestBody"]["required"]
    r = httpx.post(f"{host.url}/{SERVICE}/{path}", timeout=30)
    assert (r.status_code >= 400) == required, f"required={required}: {r.status_code} {r.text}"


class NonFinite(Service):
    @endpoint
    def big(self, factor: float = 10.0) -> float:
        return 1.7976931348623157e308 * factor


def test_a_non_finite_float_response_matches_the_document() -> None:
    with ServiceClient(NonFinite, name="non-finite") as client:
        responses = client.openapi()["paths"]["/non-finite/big"]["post"]["responses"]
        components = client.openapi()["components"]
        status, body = client.post("big", {})
    assert str(status) in responses, status
    documented = responses[str(status)]["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**documented, "components": components})


def _labels() -> list[str]:
    labels = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # an operation schemathesis cannot read: the document is wrong
        labels.append(result.ok().label)
    return labels
