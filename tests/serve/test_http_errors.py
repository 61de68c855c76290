"""An endpoint answers 4xx (or a deliberate 5xx) by raising ``shipyard.HTTPError``, or
Starlette's / FastAPI's ``HTTPException``: in a real worker process, plain, async and batched.

FastAPI is not installed in the test environment; its ``HTTPException`` is Starlette's
subclass with ``detail: Any``, so the test defines that subclass the way FastAPI does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from shipyard import HTTPError
from shipyard.serve import Service, ServiceClient, endpoint
from shipyard.serve.testing import FrameConnection, WorkerProcess

SERVICE = '''
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException

from shipyard import HTTPError
from shipyard.serve import Service, endpoint


class HTTPException(StarletteHTTPException):
    """What fastapi.HTTPException is: Starlette's, with a detail of any JSON-able type."""

    def __init__(self, status_code: int, detail: Any = None, headers: dict | None = None):
        super().__init__(status_code=status_code, detail=detail, headers=headers)


class Iris(Service):
    @endpoint
    def predict(self, features: list[float]) -> int:
        if len(features) != 4:
            raise HTTPError(422, f"expected 4 features, got {len(features)}", field="features")
        return 1

    @endpoint
    async def user(self, name: str) -> str:
        if name != "ann":
            raise HTTPError(404, f"no user {name!r}")
        return name

    @endpoint
    def starlette(self, status: int, detail: str | None = None) -> str:
        raise StarletteHTTPException(status, detail, headers={"Retry-After": "3"})

    @endpoint
    async def fastapi(self, status: int) -> str:
        raise HTTPException(status, detail={"reason": "quota", "left": 0})

    @endpoint
    def warming(self) -> str:
        raise HTTPError(503, "the model is still loading; retry in a minute")

    @endpoint
    def bug(self) -> str:
        raise ValueError("X has 1 features, but LogisticRegression is expecting 4")

    @endpoint(batch=True, max_batch_size=16, max_wait_ms=20)
    def score(self, xs: list[float]) -> list[float]:
        bad = [i for i, x in enumerate(xs) if x < 0]
        if bad:
            raise HTTPError(422, f"x must be >= 0, got {xs[bad[0]]}", field="xs", items=bad)
        return [2 * x for x in xs]

    @endpoint(batch=True, max_batch_size=16, max_wait_ms=20)
    def closed(self, xs: list[float]) -> list[float]:
        raise HTTPError(503, "scoring is closed for maintenance")
'''


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    code = tmp_path_factory.mktemp("http-errors")
    (code / "iris_service.py").write_text(SERVICE)
    with WorkerProcess(code, "iris_service.py:Iris", "iris") as process:
        process.wait_ready()
        yield process


@pytest.fixture
def conn(worker: WorkerProcess) -> FrameConnection:
    return worker.connect()


def _events(worker: WorkerProcess, event: str) -> list[dict[str, Any]]:
    return [e for e in worker.events() if e["event"] == event]


def test_an_http_error_is_answered_with_its_status_and_field(
    worker: WorkerProcess, conn: FrameConnection
) -> None:
    before = len(worker.events())
    status, body = conn.request("predict", {"features": [5.1]})
    assert status == 422
    assert body == {
        "error": {
            "type": "validation_error",
            "message": "expected 4 features, got 1",
            "field": "features",
        }
    }
    assert conn.request("predict", {"features": [5.1, 3.5, 1.4, 0.2]}) == (200, 1)
    assert worker.events()[before:] == []  # an answer, not a failure: nothing logged


def test_an_async_endpoint_answers_its_http_error(conn: FrameConnection) -> None:
    assert conn.request("user", {"name": "bob"}) == (
        404,
        {"error": {"type": "not_found", "message": "no user 'bob'"}},
    )
    assert conn.request("user", {"name": "ann"}) == (200, "ann")


def test_starlettes_http_exception_is_answered_with_its_status(conn: FrameConnection) -> None:
    status, body = conn.request("starlette", {"status": 403, "detail": "not your model"})
    assert (status, body) == (403, {"error": {"type": "forbidden", "message": "not your model"}})
    # no detail: Starlette's reason phrase
    status, body = conn.request("starlette", {"status": 409})
    assert (status, body) == (409, {"error": {"type": "conflict", "message": "Conflict"}})


def test_fastapis_http_exception_sends_a_non_string_detail_as_json(
    conn: FrameConnection,
) -> None:
    status, body = conn.request("fastapi", {"status": 429})
    assert status == 429
    assert body["error"]["type"] == "too_many_requests"
    assert json.loads(body["error"]["message"]) == {"reason": "quota", "left": 0}


def test_a_deliberate_5xx_is_answered_as_raised_with_a_logged_error_id(
    worker: WorkerProcess, conn: FrameConnection
) -> None:
    status, body = conn.request("warming")
    assert status == 503
    error = body["error"]
    assert error["type"] == "service_unavailable"
    assert error["message"] == "the model is still loading; retry in a minute"
    [logged] = [e for e in _events(worker, "endpoint_http_error") if e["endpoint"] == "warming"]
    assert logged["error_id"] == error["error_id"] and logged["status"] == 503
    assert "Traceback" in logged["traceback"] and "Traceback" not in json.dumps(body)


def test_an_http_exception_with_a_status_that_is_no_error_is_a_500(
    conn: FrameConnection,
) -> None:
    status, body = conn.request("starlette", {"status": 302, "detail": "elsewhere"})
    assert status == 500 and body["error"]["type"] == "internal_error"
    assert "elsewhere" not in json.dumps(body)


def test_any_other_exception_stays_a_500_without_its_traceback(
    worker: WorkerProcess, conn: FrameConnection
) -> None:
    status, body = conn.request("bug")
    assert status == 500
    assert body["error"]["type"] == "internal_error"
    text = json.dumps(body)
    assert "LogisticRegression" not in text and "Traceback" not in text
    [logged] = [e for e in _events(worker, "endpoint_error") if e["endpoint"] == "bug"]
    assert logged["error_id"] == body["error"]["error_id"]


def test_a_batched_http_error_with_items_answers_only_their_callers(
    conn: FrameConnection,
) -> None:
    bodies = [{"xs": [float(i), -1.0 if i == 3 else 1.0]} for i in range(8)]
    ids = [conn.send_request("score", body) for body in bodies]
    frames = {f.request_id: f for f in (conn.recv() for _ in ids)}
    statuses = [frames[i].code for i in ids]
    assert statuses == [200, 200, 200, 422, 200, 200, 200, 200]
    error = json.loads(frames[ids[3]].payload)["error"]
    assert error["type"] == "validation_error" and error["field"] == "xs"
    assert json.loads(frames[ids[5]].payload) == [10.0, 2.0]


def test_a_batched_http_error_without_items_answers_every_caller(
    conn: FrameConnection,
) -> None:
    ids = [conn.send_request("closed", {"xs": [float(i)]}) for i in range(6)]
    frames = [conn.recv() for _ in ids]
    assert [f.code for f in frames] == [503] * 6
    messages = {json.loads(f.payload)["error"]["message"] for f in frames}
    assert messages == {"scoring is closed for maintenance"}


# -- batches of a known make-up: the worker's dispatch code, in process ---------------------


class Counter(Service):
    def load(self) -> None:
        self.calls: list[list[float]] = []

    @endpoint(batch=True, max_batch_size=16)
    def score(self, xs: list[float]) -> list[float]:
        self.calls.append(list(xs))
        if any(x == 0 for x in xs):
            raise HTTPError(400, "a zero in the batch", field="xs")
        bad = [i for i, x in enumerate(xs) if x < 0]
        if bad:
            raise HTTPError(422, "negative", field="xs", items=bad)
        return xs


class Located(Service):
    @endpoint(batch=True, max_batch_size=16)
    def score(self, xs: list[float]) -> list[float]:
        bad = [i for i, x in enumerate(xs) if x < 0]
        if bad:
            where = f"xs[{bad[0]}]"
            raise HTTPError(422, f"{where} must be >= 0", field=where, items=bad)
        return xs


def test_a_named_items_field_index_is_counted_in_the_callers_own_list() -> None:
    with ServiceClient(Located) as client:
        replies = client.post_many("score", [{"xs": [1.0, 2.0]}, {"xs": [3.0, -4.0]}])
    assert replies[0] == (200, [1.0, 2.0])
    assert replies[1] == (
        422,
        {"error": {"type": "validation_error", "message": "xs[1] must be >= 0", "field": "xs[1]"}},
    )


def test_in_one_batch_named_items_fail_alone_and_unnamed_fail_everyone() -> None:
    with ServiceClient(Counter) as client:
        replies = client.post_many("score", [{"xs": [1.0]}, {"xs": [-2.0, 3.0]}, {"xs": [4.0]}])
        assert [status for status, _ in replies] == [200, 422, 200]
        assert client.instance.calls == [[1.0, -2.0, 3.0, 4.0], [1.0, 4.0]]  # type: ignore[attr-defined]

        client.instance.calls.clear()  # type: ignore[attr-defined]
        replies = client.post_many("score", [{"xs": [1.0]}, {"xs": [0.0]}, {"xs": [4.0]}])
        assert [status for status, _ in replies] == [400, 400, 400]
        assert replies[0][1]["error"] == {
            "type": "bad_request",
            "message": "a zero in the batch",
            "field": "xs",
        }
        assert client.instance.calls == [[1.0, 0.0, 4.0]]  # type: ignore[attr-defined]


def test_an_http_error_status_outside_400_to_599_is_refused_where_raised() -> None:
    with pytest.raises(ValueError, match="from 400 to 599, got 302"):
        HTTPError(302, "moved")
