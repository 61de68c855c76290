"""Validators, serializers, contracts and the OpenAPI document, built once per endpoint.

Nothing here is rebuilt per request: ``EndpointSchema`` holds a pydantic request model
(parameters by name, defaults kept, extra fields forbidden) and a ``TypeAdapter`` of the
return annotation. A request is parsed and validated in one pass (``validate_json``);
a response is serialized directly, and only when that fails is it validated against its
annotation (a ``dict`` for a model, a tuple for a list) before a 500 is declared.

Errors raised for the dispatcher, all ``EndpointError`` (a ``shipyard.HTTPError``, see
``answers.py``):

    EndpointError(status, type, message, field?)     the body {"error": {...}}
      400 invalid_json          the body is not JSON
      422 validation_error      a parameter is missing, extra or of the wrong type, or a
                                float is NaN, Infinity or overflows (1e999)
      500 response_validation   the endpoint returned a value its annotation does not allow,
                                or a NaN/inf float, which JSON cannot carry
      500 contract_violation    the value broke the endpoint's contract
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import CoreSchema, PydanticSerializationError, SchemaValidator

from shipyard.errors import error_body
from shipyard.serve.answers import EndpointError
from shipyard.serve.service import EndpointSpec, ServiceDefinitionError, show_hint

__all__ = [
    "Contract",
    "EndpointError",
    "EndpointSchema",
    "build_openapi",
    "error_body",
    "takes_request",
]

ERROR_SCHEMA_NAME = "ShipyardError"
_REF = "#/components/schemas/{model}"
_JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


class Contract:
    """A check on every response value: a type (validated as an annotation) or a predicate.

    A predicate of two parameters, ``check(value, request)``, also gets the request's
    arguments by name (a dict, as the endpoint got them), so an answer can be checked against
    what was asked: offsets inside the text that was sent, one result per item given.
    """

    def __init__(self, contract: Any) -> None:
        self.source = contract
        self._adapter: TypeAdapter[Any] | None = None
        self._predicate: Callable[..., Any] | None = None
        self.takes_request = False
        if _is_predicate(contract):
            self._predicate = contract
            self.takes_request = takes_request(contract)
        else:
            self._adapter = TypeAdapter(contract)

    def violation(self, value: Any, request: dict[str, Any] | None = None) -> str | None:
        """Why ``value`` breaks the contract, or ``None`` when it holds; ``request`` is the
        call's arguments, for a predicate that takes them."""
        if self._adapter is not None:
            try:
                self._adapter.validate_python(value)
            except ValidationError as exc:
                return _describe(exc.errors(include_url=False)[0], "value")
            return None
        assert self._predicate is not None
        name = getattr(self._predicate, "__name__", repr(self._predicate))
        try:
            ok = self._predicate(value, request) if self.takes_request else self._predicate(value)
        except Exception as exc:
            return f"the contract check {name}() raised {type(exc).__name__}: {exc}"
        return None if ok else f"the contract check {name}() returned {ok!r}"


@dataclass
class EndpointSchema:
    """The request model, response adapter and contract of one endpoint."""

    spec: EndpointSpec
    request_model: type[BaseModel]
    response: TypeAdapter[Any]
    contract: Contract | None
    #: the request model's validator with every float finite (see _finite_validator)
    validator: SchemaValidator

    @classmethod
    def build(cls, spec: EndpointSpec, service: str) -> EndpointSchema:
        fields: dict[str, Any] = {
            p.name: (p.hint, ... if p.required else p.default) for p in spec.parameters
        }
        title = "".join(part.capitalize() for part in spec.name.replace("-", "_").split("_"))
        try:
            with warnings.catch_warnings():
                # a parameter may be called `json` or `copy`: shadowing BaseModel's methods
                # is harmless here, the worker reads fields from __dict__
                warnings.simplefilter("ignore")
                request_model = create_model(  # type: ignore[call-overload]
                    f"{title}Request",
                    __config__=ConfigDict(
                        extra="forbid", protected_namespaces=(), allow_inf_nan=False
                    ),
                    **fields,
                )
            validator = _finite_validator(request_model)
            response: TypeAdapter[Any] = TypeAdapter(spec.returns)
            contract = None if spec.options.contract is None else Contract(spec.options.contract)
        except ServiceDefinitionError:
            raise
        except Exception as exc:
            raise ServiceDefinitionError(
                f"cannot build a validator from the type hints: {exc}; use JSON-friendly "
                "types (str, int, float, bool, list, dict, Optional, pydantic models)",
                service=service,
                method=spec.method,
                source_file=spec.source_file,
                lineno=spec.lineno,
            ) from None
        return cls(spec, request_model, response, contract, validator)

    def parse(self, body: bytes) -> dict[str, Any]:
        """The endpoint's keyword arguments, or ``EndpointError`` (400/422)."""
        data = body or b"{}"  # an empty body is an empty object
        try:
            # strict: a value of the wrong JSON type is refused, as the OpenAPI document says
            # (JSON mode still takes an int for a float)
            request = self.validator.validate_json(data, strict=True)
        except ValidationError as exc:
            if not _only_integral_floats(exc):
                raise self._request_error(exc) from None
            # JSON Schema counts 41.0 as an integer: when that is the only complaint, the
            # lax pass converts exactly those values and nothing else differs
            try:
                request = self.validator.validate_json(data)
            except ValidationError as again:
                raise self._request_error(again) from None
        return request.__dict__  # type: ignore[no-any-return]

    def dump(self, value: Any) -> tuple[bytes, Any]:
        """The JSON bytes of a return value and the value as validated (for the contract)."""
        try:
            out = self.response.dump_json(value, warnings="error")
        except PydanticSerializationError:
            pass
        else:
            # JSON has no inf/nan: pydantic writes them as null, which the document does not
            # allow where a number is promised; only a reply containing null can hide one
            if b"null" in out:
                found = _non_finite_path(value)
                if found is not None:
                    where = ".".join(str(part) for part in found[0]) or "the value"
                    raise EndpointError(
                        500,
                        "response_validation",
                        f"{self.spec.method}() returned a non-finite float ({found[1]!r} at "
                        f"{where}), which JSON cannot carry; return a finite number or None",
                    )
            return out, value
        try:
            value = self.response.validate_python(value)
            return self.response.dump_json(value), value
        except (ValidationError, PydanticSerializationError) as exc:
            problem = self._response_problem(value, exc)
            raise EndpointError(500, "response_validation", problem) from None

    def _response_problem(self, value: Any, exc: Exception) -> str:
        expected = show_hint(self.spec.returns)
        problem = (
            _describe(exc.errors(include_url=False)[0], "value")
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        hint = ""
        if type(value).__module__ == "numpy":
            hint = "; convert numpy values with .tolist() or .item()"
        return (
            f"{self.spec.method}() returned {type(value).__name__}, which does not match its "
            f"annotation -> {expected}: {problem}{hint}"
        )

    def _request_error(self, exc: ValidationError) -> EndpointError:
        errors = exc.errors(include_url=False)
        first = errors[0]
        if first["type"] == "json_invalid":
            reason = first.get("ctx", {}).get("error", "invalid JSON")
            return EndpointError(400, "invalid_json", f"the request body is not JSON: {reason}")
        names = ", ".join(p.name for p in self.spec.parameters) or "no parameters"
        if not first["loc"]:
            kind = _JSON_KINDS.get(type(first.get("input")), "not an object")
            return EndpointError(
                422,
                "validation_error",
                f"the request body must be a JSON object of the endpoint's parameters "
                f"({names}), got {kind}",
            )
        field = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden" and len(first["loc"]) == 1:
            message = f"unknown field {field!r}; {self.spec.name} takes: {names}"
        else:
            message = _describe(first, field)
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
        return EndpointError(422, "validation_error", message, field=field)


def build_openapi(
    service: str, description: str, schemas: list[EndpointSchema], version: str = "0"
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a service: ``POST /{service}/{endpoint}`` per endpoint."""
    generator = GenerateJsonSchema(ref_template=_REF)
    inputs: list[tuple[tuple[str, str], Any, Any]] = []
    for schema in schemas:
        inputs.append(
            (
                (schema.spec.name, "request"),
                "validation",
                schema.request_model.__pydantic_core_schema__,
            )
        )
        inputs.append(
            ((schema.spec.name, "response"), "serialization", schema.response.core_schema)
        )
    mapping, definitions = generator.generate_definitions(inputs)
    error_ref = {"$ref": _REF.format(model=ERROR_SCHEMA_NAME)}
    components: dict[str, Any] = {str(k): v for k, v in definitions.items()}
    components[ERROR_SCHEMA_NAME] = _ERROR_SCHEMA
    paths: dict[str, Any] = {}
    for schema in schemas:
        spec = schema.spec
        options = spec.options
        summary, _, rest = spec.doc.partition("\n")
        operation: dict[str, Any] = {
            "operationId": f"{service}_{spec.name}".replace("-", "_"),
            "summary": summary or spec.name,
            "requestBody": {
                "required": any(p.required for p in spec.parameters),
                "content": {
                    "application/json": {"schema": mapping[(spec.name, "request"), "validation"]}
                },
            },
            "responses": {
                "200": {
                    "description": "the return value",
                    "content": {
                        "application/json": {
                            "schema": mapping[(spec.name, "response"), "serialization"]
                        }
                    },
                },
                **{
                    code: {
                        "description": text,
                        "content": {"application/json": {"schema": error_ref}},
                    }
                    for code, text in _ERROR_RESPONSES.items()
                },
            },
            "x-shipyard": {"batch": options.batch, "timeout": options.timeout},
        }
        if rest.strip():
            operation["description"] = rest.strip()
        if options.batch:
            operation["x-shipyard"].update(
                max_batch_size=options.max_batch_size, max_wait_ms=options.max_wait_ms
            )
        paths[f"/{service}/{spec.name}"] = {"post": operation}
    info: dict[str, Any] = {"title": service, "version": version}
    if description:
        info["description"] = description
    return {
        "openapi": "3.1.0",
        "info": info,
        "paths": paths,
        "components": {"schemas": components},
    }


_ERROR_RESPONSES = {
    "400": "the body is not JSON (type invalid_json)",
    "422": (
        "a parameter is missing, unknown or of the wrong type, or a number is NaN, infinite "
        "or overflows (type validation_error)"
    ),
    "500": "the endpoint failed; the body has an error_id to find in the service logs",
}

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": ERROR_SCHEMA_NAME,
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "dotted path of the bad field"},
                "error_id": {"type": "string", "description": "find it in the service logs"},
            },
        }
    },
}


def _describe(error: Any, field: str) -> str:
    if error["type"] == "missing":
        return f"missing required field {field!r}"
    if error["type"] == "extra_forbidden":
        return f"unexpected field {field!r}"
    got = repr(error.get("input"))
    if len(got) > 80:
        got = got[:77] + "..."
    return f"{field}: {error['msg']} (got {got})"


def takes_request(predicate: Callable[..., Any]) -> bool:
    """Whether a contract predicate takes the request's arguments too (a second positional
    parameter, or ``*args``)."""
    try:
        parameters = inspect.signature(predicate).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: one argument
        return False
    kinds = [p.kind for p in parameters]
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return (
        sum(kind in positional for kind in kinds) >= 2 or inspect.Parameter.VAR_POSITIONAL in kinds
    )


def _is_predicate(contract: Any) -> bool:
    if isinstance(
        contract, types.FunctionType | types.BuiltinFunctionType | types.MethodType | partial
    ):
        return True
    if isinstance(contract, type) or typing.get_origin(contract) is not None:
        return False
    if isinstance(contract, typing.TypeVar):
        return False
    return callable(contract) and not inspect.isclass(contract)


def _finite_validator(model: type[BaseModel]) -> SchemaValidator:
    """``model``'s validator, refusing NaN, Infinity and overflowed floats (``1e999``) everywhere.

    JSON has no such numbers, but the parser takes the literals and rounds an overflow to
    inf. ``allow_inf_nan=False`` on the request model reaches its own fields and their lists
    and dicts, not a nested pydantic model: pydantic-core reuses that model's own prebuilt
    validator, built with its own config. So the request's core schema is copied with every
    float, decimal and config made finite, and built while the models in it are marked
    incomplete (pydantic-core then builds them from the copy; they are marked complete again
    at once). Built once per endpoint at load: a request pays nothing, and the 422 names the
    field's path (``pairs.3.score``). The instances are still of the user's classes.
    """
    schema = _finite(model.__pydantic_core_schema__)
    classes = [cls for cls in _schema_classes(schema) if cls.__dict__.get("__pydantic_complete__")]
    for cls in classes:
        cls.__pydantic_complete__ = False  # type: ignore[attr-defined]
    try:
        return SchemaValidator(typing.cast(CoreSchema, schema))
    finally:
        for cls in classes:
            cls.__pydantic_complete__ = True  # type: ignore[attr-defined]


def _finite(node: Any) -> Any:
    if isinstance(node, list):
        return [_finite(item) for item in node]
    if not isinstance(node, dict):
        return node  # classes, functions: shared, not copied
    copy = {key: value if key in _OPAQUE else _finite(value) for key, value in node.items()}
    if node.get("type") in ("float", "decimal"):
        copy["allow_inf_nan"] = False
    if isinstance(node.get("config"), dict):
        copy["config"] = {**node["config"], "allow_inf_nan": False}
    return copy


_OPAQUE = ("default", "metadata", "config", "cls", "serialization")


def _schema_classes(node: Any) -> list[type]:
    """The classes of the models and dataclasses in a core schema."""
    if isinstance(node, list):
        return [cls for item in node for cls in _schema_classes(item)]
    if not isinstance(node, dict):
        return []
    found = [node["cls"]] if node.get("type") in ("model", "dataclass") else []
    for key, value in node.items():
        if key not in _OPAQUE:
            found.extend(_schema_classes(value))
    return found


def _non_finite_path(
    value: Any, path: tuple[Any, ...] = ()
) -> tuple[tuple[Any, ...], float] | None:
    """The path and value of the first NaN or inf float inside a return value, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, value)
    items: Any
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    elif isinstance(value, set | frozenset):
        items = ((None, v) for v in value)
    elif isinstance(value, BaseModel):
        items = value.__dict__.items()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    else:
        return None
    for key, item in items:
        found = _non_finite_path(item, path if key is None else (*path, key))
        if found is not None:
            return found
    return None


def _only_integral_floats(exc: ValidationError) -> bool:
    """Whether every error is an integer field given a float with no fractional part."""
    return all(
        e["type"] == "int_type" and isinstance(e.get("input"), float) and e["input"].is_integer()
        for e in exc.errors(include_url=False)
    )
