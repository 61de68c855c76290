"""Service classes, request validation, responses, contracts and the OpenAPI document,
driven through ServiceClient (the worker's own dispatch code, in process)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Optional

import pytest
from annotated_types import Len
from pydantic import BaseModel, ConfigDict, Field

from shipyard.serve import Service, ServiceClient, ServiceDefinitionError, endpoint
from shipyard.serve.service import collect_endpoints


class Pair(BaseModel):
    user: str
    item: str


class StrictPair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str
    item: str


class Basket(BaseModel):
    owner: Pair
    pairs: list[StrictPair]
    note: str | None = None


class Row(BaseModel):
    profile_id: str
    titles: list[str]


class Kinds(Service):
    """Every kind of type hint."""

    def load(self) -> None:
        self.loaded = True

    @endpoint
    def home(self, profile_id: str, limit: int = 3) -> list[str]:
        """The home row.

        As many titles as asked."""
        return [f"{profile_id}-{i}" for i in range(limit)]

    @endpoint
    def mixed(
        self,
        ratio: float,
        flag: bool,
        tags: dict[str, int],
        maybe: Optional[str] = None,  # noqa: UP045 - the old spelling must work too
        also: int | None = None,
        bounded: Annotated[int, Field(ge=0, le=10)] = 5,
    ) -> dict[str, Any]:
        return {
            "ratio": ratio,
            "flag": flag,
            "tags": tags,
            "maybe": maybe,
            "also": also,
            "bounded": bounded,
        }

    @endpoint
    def nested(self, basket: Basket) -> Row:
        return Row(profile_id=basket.owner.user, titles=[p.item for p in basket.pairs])

    @endpoint
    async def echo(self, text: str) -> dict[str, str]:
        return {"text": text}

    @endpoint
    def nothing(self) -> str:
        return "ok"


@pytest.fixture(name="kinds")
def kinds_fixture() -> Any:
    with ServiceClient(Kinds) as client:
        yield client


# -- requests -------------------------------------------------------------------------------


def test_load_runs_once_before_requests(kinds: ServiceClient) -> None:
    assert kinds.instance.loaded is True  # type: ignore[attr-defined]
    assert kinds.name == "kinds"


def test_primitives_and_defaults(kinds: ServiceClient) -> None:
    assert kinds.post("home", {"profile_id": "p"}) == (200, ["p-0", "p-1", "p-2"])
    assert kinds.post("home", {"profile_id": "p", "limit": 1}) == (200, ["p-0"])
    status, body = kinds.post("mixed", {"ratio": 1, "flag": True, "tags": {"a": 1}})
    assert status == 200
    assert body == {
        "ratio": 1.0,
        "flag": True,
        "tags": {"a": 1},
        "maybe": None,
        "also": None,
        "bounded": 5,
    }
    status, body = kinds.post(
        "mixed", {"ratio": 0.5, "flag": False, "tags": {}, "maybe": "x", "also": 2, "bounded": 9}
    )
    assert (status, body["maybe"], body["also"], body["bounded"]) == (200, "x", 2, 9)


def test_no_parameters_and_empty_body(kinds: ServiceClient) -> None:
    assert kinds.post("nothing") == (200, "ok")
    assert kinds.post("nothing", {}) == (200, "ok")


def test_async_endpoint(kinds: ServiceClient) -> None:
    assert kinds.post("echo", {"text": "hi"}) == (200, {"text": "hi"})


def test_pydantic_models_in_and_out(kinds: ServiceClient) -> None:
    basket = {"owner": {"user": "u", "item": "i"}, "pairs": [{"user": "u", "item": "a"}]}
    assert kinds.post("nested", {"basket": basket}) == (200, {"profile_id": "u", "titles": ["a"]})


def _error(result: tuple[int, Any]) -> tuple[int, dict[str, Any]]:
    status, body = result
    assert set(body) == {"error"}
    return status, body["error"]


def test_wrong_type_names_field_and_value(kinds: ServiceClient) -> None:
    status, error = _error(kinds.post("home", {"profile_id": "p", "limit": "ten"}))
    assert status == 422
    assert error["type"] == "validation_error"
    assert error["field"] == "limit"
    assert "limit" in error["message"] and "integer" in error["message"]
    assert "'ten'" in error["message"]


def test_missing_field(kinds: ServiceClient) -> None:
    status, error = _error(kinds.post("home", {"limit": 2}))
    assert (status, error["field"]) == (422, "profile_id")
    assert "missing required field 'profile_id'" in error["message"]


def test_extra_fields_are_rejected(kinds: ServiceClient) -> None:
    status, error = _error(kinds.post("home", {"profile_id": "p", "limt": 2}))
    assert (status, error["type"], error["field"]) == (422, "validation_error", "limt")
    assert "unknown field 'limt'" in error["message"]
    assert "profile_id, limit" in error["message"]


def test_constraint_from_annotated(kinds: ServiceClient) -> None:
    status, error = _error(
        kinds.post("mixed", {"ratio": 1, "flag": True, "tags": {}, "bounded": 11})
    )
    assert (status, error["field"]) == (422, "bounded")
    assert "less than or equal to 10" in error["message"]


def test_nested_error_has_dotted_path(kinds: ServiceClient) -> None:
    basket = {"owner": {"user": "u", "item": "i"}, "pairs": [{"user": "u", "item": "a"}, {}]}
    status, error = _error(kinds.post("nested", {"basket": basket}))
    assert (status, error["field"]) == (422, "basket.pairs.1.user")
    assert "(and 1 more error)" in error["message"]
    # a nested model's own config decides about extra fields
    basket["pairs"] = [{"user": "u", "item": "a", "extra": 1}]
    _, error = _error(kinds.post("nested", {"basket": basket}))
    assert error["field"] == "basket.pairs.0.extra"
    assert "unexpected field 'basket.pairs.0.extra'" in error["message"]
    basket = {"owner": {"user": "u", "item": "i", "extra": 1}, "pairs": []}
    assert kinds.post("nested", {"basket": basket}) == (200, {"profile_id": "u", "titles": []})


def test_invalid_json_is_400(kinds: ServiceClient) -> None:
    status, error = _error(kinds.post("home", b'{"profile_id": '))
    assert (status, error["type"]) == (400, "invalid_json")
    assert "not JSON" in error["message"]
    assert "field" not in error


@pytest.mark.parametrize(
    ("body", "kind"),
    [(b"[1, 2]", "an array"), (b'"p"', "a string"), (b"3", "a number"), (b"null", "null")],
)
def test_body_must_be_an_object(kinds: ServiceClient, body: bytes, kind: str) -> None:
    status, error = _error(kinds.post("home", body))
    assert (status, error["type"]) == (422, "validation_error")
    assert (
        f"must be a JSON object of the endpoint's parameters (profile_id, limit), got {kind}"
        in error["message"]
    )


# -- responses, contracts, errors -------------------------------------------------------------


class Faulty(Service):
    @endpoint
    def boom(self, secret: str) -> str:
        raise RuntimeError(f"database password is {secret}")

    @endpoint
    async def aboom(self) -> str:
        raise ValueError("async failure")

    @endpoint
    def wrong(self) -> list[int]:
        return ["not", "ints"]  # type: ignore[list-item]

    @endpoint
    def coerced(self) -> Row:
        return {"profile_id": "p", "titles": ("a", "b")}  # type: ignore[return-value]

    @endpoint
    def numpyish(self) -> dict[str, float]:
        import numpy as np

        return np.zeros(2)  # type: ignore[return-value]

    @endpoint(contract=Annotated[list[float], Len(3, 3)])
    def embed(self, n: int) -> list[float]:
        return [0.5] * n

    @endpoint(contract=lambda probs: abs(sum(probs) - 1.0) < 1e-6)
    def probs(self, values: list[float]) -> list[float]:
        return values

    @endpoint(contract=lambda value: value["n"] > 0)
    def raising_contract(self) -> dict[str, int]:
        return {}


@pytest.fixture(name="faulty")
def faulty_fixture() -> Any:
    with ServiceClient(Faulty) as client:
        yield client


def _log_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_exception_gives_error_id_and_no_traceback(
    faulty: ServiceClient, capsys: pytest.CaptureFixture[str]
) -> None:
    status, error = _error(faulty.post("boom", {"secret": "hunter2"}))
    assert status == 500
    assert error["type"] == "internal_error"
    assert re.fullmatch(r"[0-9a-f]{16}", error["error_id"])
    assert error["message"] == (
        f"the endpoint raised; see `shipyard service logs faulty --error-id {error['error_id']}`"
    )
    assert "hunter2" not in json.dumps(error) and "Traceback" not in json.dumps(error)
    (line,) = _log_lines(capsys.readouterr().err)
    assert line["event"] == "endpoint_error"
    assert line["error_id"] == error["error_id"]
    assert line["endpoint"] == "boom"
    assert "Traceback" in line["traceback"] and "hunter2" in line["traceback"]
    assert "test_service.py" in line["traceback"]


def test_async_exception(faulty: ServiceClient, capsys: pytest.CaptureFixture[str]) -> None:
    status, error = _error(faulty.post("aboom"))
    assert (status, error["type"]) == (500, "internal_error")
    assert _log_lines(capsys.readouterr().err)[0]["error_id"] == error["error_id"]


def test_wrong_return_type_is_response_validation(
    faulty: ServiceClient, capsys: pytest.CaptureFixture[str]
) -> None:
    status, error = _error(faulty.post("wrong"))
    assert (status, error["type"]) == (500, "response_validation")
    assert "wrong() returned list" in error["message"] and "list[int]" in error["message"]
    assert re.fullmatch(r"[0-9a-f]{16}", error["error_id"])
    assert _log_lines(capsys.readouterr().err)[0]["event"] == "response_validation"


def test_return_value_is_coerced_when_it_validates(faulty: ServiceClient) -> None:
    assert faulty.post("coerced") == (200, {"profile_id": "p", "titles": ["a", "b"]})


def test_numpy_return_gets_a_hint(faulty: ServiceClient) -> None:
    status, error = _error(faulty.post("numpyish"))
    assert (status, error["type"]) == (500, "response_validation")
    assert ".tolist()" in error["message"]


def test_type_contract(faulty: ServiceClient, capsys: pytest.CaptureFixture[str]) -> None:
    assert faulty.post("embed", {"n": 3}) == (200, [0.5, 0.5, 0.5])
    status, error = _error(faulty.post("embed", {"n": 2}))
    assert (status, error["type"]) == (500, "contract_violation")
    assert "at least 3 items" in error["message"]
    (line,) = _log_lines(capsys.readouterr().err)
    assert (line["event"], line["error_id"]) == ("contract_violation", error["error_id"])


def test_callable_contract(faulty: ServiceClient) -> None:
    assert faulty.post("probs", {"values": [0.25, 0.75]}) == (200, [0.25, 0.75])
    status, error = _error(faulty.post("probs", {"values": [0.5, 0.75]}))
    assert (status, error["type"]) == (500, "contract_violation")
    assert "returned False" in error["message"]
    status, error = _error(faulty.post("raising_contract"))
    assert (status, error["type"]) == (500, "contract_violation")
    assert "raised KeyError" in error["message"]


# -- definition errors ------------------------------------------------------------------------


def _definition_error(cls: type) -> str:
    with pytest.raises(ServiceDefinitionError) as info:
        collect_endpoints(cls)
    return str(info.value)


def test_endpoints_in_definition_order_including_bases() -> None:
    class Base(Service):
        @endpoint
        def first(self) -> int:
            return 1

    class Child(Base):
        @endpoint(name="third-one")
        def third(self) -> int:
            return 3

        @endpoint
        def second(self) -> int:
            return 2

    assert [spec.name for spec in collect_endpoints(Child)] == ["first", "third-one", "second"]


def test_no_endpoints() -> None:
    class Empty(Service):
        def helper(self) -> None: ...

    message = _definition_error(Empty)
    assert "Empty" in message and "no endpoints" in message and "@endpoint" in message
    assert "test_service.py:" in message


def test_missing_hint_names_method_file_line_and_fix() -> None:
    class NoHint(Service):
        @endpoint
        def home(self, profile_id) -> str:  # type: ignore[no-untyped-def]
            return "x"

    message = _definition_error(NoHint)
    assert "NoHint.home" in message
    assert re.search(r"test_service\.py:\d+", message)
    assert "'profile_id' has no type hint" in message and "profile_id: str" in message


def test_missing_return_annotation() -> None:
    class NoReturn(Service):
        @endpoint
        def home(self, profile_id: str):  # type: ignore[no-untyped-def]
            return "x"

    assert "no return annotation" in _definition_error(NoReturn)


def test_varargs_rejected() -> None:
    class Star(Service):
        @endpoint
        def home(self, *names: str) -> str:
            return "x"

    assert "variadic" in _definition_error(Star)


@pytest.mark.parametrize(
    "source",
    [
        "def score(self, pairs: Pair) -> list[float]: ...",
        "def score(self, pairs: list[Pair], k: int) -> list[float]: ...",
        "def score(self, pairs: list[Pair]) -> float: ...",
        "def score(self) -> list[float]: ...",
    ],
)
def test_batch_signature_checks(source: str) -> None:
    namespace: dict[str, Any] = {}
    exec(source, {"Pair": Pair, "list": list, "float": float, "int": int}, namespace)
    cls = type(
        "Batchy",
        (Service,),
        {"score": endpoint(batch=True)(namespace["score"]), "__module__": __name__},
    )
    message = _definition_error(cls)
    assert "Batchy.score" in message and "batch=True" in message and "list" in message


def test_bad_options() -> None:
    with pytest.raises(ServiceDefinitionError, match="only apply with batch=True"):
        endpoint(max_batch_size=8)(lambda self: None)
    with pytest.raises(ServiceDefinitionError, match="max_batch_size must be"):
        endpoint(batch=True, max_batch_size=0)(lambda self: None)
    with pytest.raises(ServiceDefinitionError, match="timeout must be"):
        endpoint(timeout=0)(lambda self: None)
    with pytest.raises(ServiceDefinitionError, match="must match"):
        endpoint(name="Bad Name")(lambda self: None)


def test_bad_method_name() -> None:
    class Upper(Service):
        @endpoint
        def Home(self) -> str:  # noqa: N802
            return "x"

    assert "'Home' must match" in _definition_error(Upper)


def test_unresolvable_hint() -> None:
    class Later(Service):
        @endpoint
        def home(self, x: NotDefinedAnywhere) -> str:  # type: ignore[name-defined]  # noqa: F821
            return "x"

    assert "cannot resolve a type hint" in _definition_error(Later)


# -- OpenAPI ----------------------------------------------------------------------------------


def test_openapi_document_is_valid_3_1(kinds: ServiceClient) -> None:
    from openapi_spec_validator import validate

    doc = kinds.openapi()
    validate(doc)  # raises on any structural error
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["description"] == "Every kind of type hint."
    assert list(doc["paths"]) == [
        "/kinds/home",
        "/kinds/mixed",
        "/kinds/nested",
        "/kinds/echo",
        "/kinds/nothing",
    ]
    home = doc["paths"]["/kinds/home"]["post"]
    assert home["summary"] == "The home row."
    request_ref = home["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request = doc["components"]["schemas"][request_ref.rsplit("/", 1)[1]]
    assert request["required"] == ["profile_id"]
    assert request["properties"]["limit"]["default"] == 3
    assert request["additionalProperties"] is False
    assert home["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    for code in ("400", "422", "500"):
        ref = home["responses"][code]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/ShipyardError"
    error = doc["components"]["schemas"]["ShipyardError"]["properties"]["error"]
    assert set(error["properties"]) == {"type", "message", "field", "error_id"}
    # nested models land in components, referenced from both request and response
    assert {"Pair", "Basket", "Row"} <= set(doc["components"]["schemas"])


def test_public_surface() -> None:
    import shipyard.serve

    assert shipyard.serve.__all__ == sorted(shipyard.serve.__all__)
    for name in shipyard.serve.__all__:
        assert getattr(shipyard.serve, name) is not None
    with pytest.raises(AttributeError, match="Nope"):
        shipyard.serve.Nope  # noqa: B018
