"""Fuzz every endpoint of a deployed service through its own OpenAPI document (schemathesis).

The document is built in process from ``fuzz_service.Fuzz`` at import, so that each operation
is its own test item; ``test_the_host_serves_that_document`` checks that the real host serves
exactly that document. Requests go to a real ``shipyard serve`` on 127.0.0.1, with valid
(positive) and invalid (negative) bodies, plus schemathesis's coverage cases (boundaries,
wrong types, missing and extra fields). Each response must pass the checks in ``CHECKS``:
no 5xx, a documented status and content type, a body that matches the documented schema,
valid data accepted, invalid data rejected, and every error in the one documented shape.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from fuzz_service import Fuzz
from hosts import HostProcess
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import CheckContext, CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shipyard.serve.testing import ServiceClient

SERVICE = "fuzz"
EXAMPLES = 100

with ServiceClient(Fuzz, name=SERVICE) as _client:
    DOCUMENT: dict[str, Any] = json.loads(json.dumps(_client.openapi()))

schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(max_examples=EXAMPLES, no_shrink=True, deterministic=True)

# the error type each documented status carries (schemas.py's docstring)
ERROR_TYPES = {400: {"invalid_json"}, 422: {"validation_error"}}


def error_shape(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
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
    negative_data_rejection,
    error_shape,
]

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

calls: Counter[str] = Counter()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    process = HostProcess(tmp_path_factory.mktemp("fuzz-host")).start()
    try:
        target = Path(__file__).with_name("fuzz_service.py")
        process.deploy(f"{target}:Fuzz", SERVICE)
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
    assert {op.label for op in _operations()} == {f"POST {path}" for path in DOCUMENT["paths"]}


@schema.parametrize()
@FUZZ_SETTINGS
def test_fuzz(case: schemathesis.Case, host: HostProcess, session: requests.Session) -> None:
    calls[case.operation.label] += 1
    case.call_and_validate(base_url=host.url, session=session, checks=CHECKS, timeout=30)


def test_every_operation_got_enough_examples() -> None:
    if not calls:
        pytest.skip("test_fuzz did not run in this session")
    labels = {op.label for op in _operations()}
    ran = {label: calls[label] for label in labels if label in calls}
    assert all(n >= EXAMPLES for n in ran.values()), ran


def _operations() -> list[schemathesis.APIOperation]:
    return [result.ok() for result in schema.get_all_operations()]
