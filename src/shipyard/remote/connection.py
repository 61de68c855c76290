"""``shipyard.connect(url, key)``: the services of a host as Python objects.

::

    with shipyard.connect("http://127.0.0.1:8000", key) as client:
        client.ranker.home(profile_id="p1")          # POST /ranker/home {"profile_id": "p1"}
        client["home-rows"].top(k=3)                 # or client.home_rows.top(k=3)

The host's ``/openapi.json`` is read once, when connecting (:meth:`Connection.refresh` reads it
again). Each service is an object whose methods are its endpoints, each a real function:
keyword parameters from the request schema (the required ones without a default), annotations
from the JSON types, a docstring from the endpoint's own with its parameters, return value
and objects; ``help()`` and a notebook's completion show them. A call checks only that its
arguments bind to the signature (the host validates them), posts them as JSON with the key,
and returns the decoded JSON answer. An error answer raises :class:`shipyard.HTTPError` with
the error body; an unreachable host :class:`~shipyard.remote.errors.ConnectionFailed`.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import json
import keyword
import re
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import httpx

from shipyard.errors import HTTPError
from shipyard.remote.errors import ConnectionFailed, NotAHost, RemoteError
from shipyard.remote.schema import Types, properties_of, required_of

__all__ = [
    "DEFAULT_TIMEOUT",
    "UNSET",
    "Connection",
    "Endpoint",
    "RemoteService",
    "attribute_name",
    "class_name",
    "connect",
    "endpoint_function",
]

#: seconds to wait for a connection and for an answer (the host's own endpoint timeout is 30 s)
DEFAULT_TIMEOUT = 60.0


class _Unset:
    def __repr__(self) -> str:
        return "<the service's default>"


#: the default of an optional parameter whose schema names none: the argument is not sent
UNSET: Any = _Unset()


def connect(
    url: str,
    key: str | None = None,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    transport: httpx.BaseTransport | None = None,
) -> Connection:
    """The services of the shipyard host at ``url`` (``http://127.0.0.1:8000``).

    ``key`` (an ``invoke`` key, ``shipyard keys create --scope 'invoke:*'``) is sent as
    ``Authorization: Bearer <key>`` with every request; without one, only a host with no
    invoke key answers, and only to loopback. ``timeout``: seconds for each request (None:
    no limit). ``transport``: an httpx transport to send through (tests, proxies).
    """
    return Connection(url, key, timeout=timeout, transport=transport)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One endpoint as the host's OpenAPI document describes it."""

    service: str
    name: str
    path: str
    operation: Mapping[str, Any]


class Connection:
    """A client of one host: its services as attributes (``client.ranker``; a ``-`` in a
    name reads as ``_``) and items (``client["home-rows"]``). Close it, or use it in a
    ``with`` block."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not re.match(r"https?://[^/]", url):
            raise ValueError(f"the host URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        headers = {"accept": "application/json", "user-agent": "shipyard-remote"}
        if key:
            headers["authorization"] = f"Bearer {key.strip()}"
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )
        self._services: dict[str, RemoteService] = {}
        try:
            self.refresh()
        except BaseException:
            self._http.close()
            raise

    # -- the services -------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the host's ``/openapi.json`` again (services deployed or changed since)."""
        document = self._document()
        types = Types(document.get("components", {}).get("schemas", {}) or {})
        endpoints: dict[str, list[Endpoint]] = {}
        for path, item in (document.get("paths") or {}).items():
            parts = path.split("/")
            operation = item.get("post") if isinstance(item, Mapping) else None
            if len(parts) != 3 or parts[0] or not isinstance(operation, Mapping):
                continue
            endpoints.setdefault(parts[1], []).append(Endpoint(parts[1], parts[2], path, operation))
        about = {
            tag["name"]: tag.get("description", "")
            for tag in document.get("tags") or []
            if isinstance(tag, Mapping) and "name" in tag
        }
        for old in self._services.values():
            self.__dict__.pop(attribute_name(old._name), None)
        self._services = {
            service: _service_class(service, about.get(service, ""), found, types, self.url)(
                self, service
            )
            for service, found in sorted(endpoints.items())
        }
        for service, remote in self._services.items():
            attribute = attribute_name(service)
            if not hasattr(type(self), attribute):  # client.close is the method, always
                self.__dict__[attribute] = remote

    @property
    def services(self) -> tuple[str, ...]:
        """The names of the host's services, as it spells them."""
        return tuple(self._services)

    def __getitem__(self, service: str) -> RemoteService:
        try:
            return self._services[service]
        except KeyError:
            raise KeyError(self._unknown(service)) from None

    def __getattr__(self, name: str) -> RemoteService:
        if name.startswith("__") or "_services" not in self.__dict__:
            raise AttributeError(name)
        for service, remote in self._services.items():
            if attribute_name(service) == name:
                return remote
        raise AttributeError(self._unknown(name))

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *(attribute_name(s) for s in self._services)})

    def _unknown(self, name: str) -> str:
        known = ", ".join(self._services) or "none"
        return (
            f"the host at {self.url} has no service {name!r} (its services: {known}); "
            "one deployed since connect() appears after client.refresh()"
        )

    # -- HTTP ---------------------------------------------------------------------------
    def _document(self) -> dict[str, Any]:
        where = self.url + "/openapi.json"
        response = self._send("GET", "/openapi.json")
        if response.status_code != 200:
            status = response.status_code
            said = _error(response).message if 400 <= status <= 599 else response.reason_phrase
            hint = (
                "; is it a shipyard host (`shipyard serve`), and a recent one?"
                if response.status_code == 404
                else ""
            )
            raise NotAHost(f"{where} answered {status}: {said}{hint}", url=where)
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict) or "paths" not in document:
            raise NotAHost(f"{where} did not answer an OpenAPI document", url=where)
        return document

    def _send(self, method: str, path: str, content: bytes | None = None) -> httpx.Response:
        where = self.url + path
        try:
            if content is None:
                return self._http.request(method, path)
            return self._http.request(
                method, path, content=content, headers={"content-type": "application/json"}
            )
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(
                f"{method} {where} got no answer in time ({type(exc).__name__}); "
                "pass a longer timeout= to shipyard.connect",
                url=where,
            ) from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                f"cannot reach the shipyard host at {self.url} ({method} {where}): "
                f"{exc or type(exc).__name__}; is `shipyard serve` running there?",
                url=where,
            ) from exc

    def call(self, service: str, endpoint: str, arguments: Mapping[str, Any]) -> Any:
        """``POST /{service}/{endpoint}`` with ``arguments`` as the JSON body: the decoded
        answer, or :class:`shipyard.HTTPError` for an error answer."""
        path = f"/{service}/{endpoint}"
        try:
            body = json.dumps(arguments, allow_nan=False, default=_jsonable).encode()
        except (TypeError, ValueError) as exc:  # an object JSON cannot hold, or NaN
            raise type(exc)(
                f"cannot send the arguments of {service}.{endpoint} as JSON: {exc}"
            ) from None
        response = self._send("POST", path, body)
        if 200 <= response.status_code < 300:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise RemoteError(
                    f"POST {self.url}{path} answered {response.status_code} with a body "
                    f"that is not JSON: {response.text[:200]!r}",
                    url=self.url + path,
                ) from None
        if 400 <= response.status_code <= 599:
            raise _error(response)
        raise RemoteError(
            f"POST {self.url}{path} answered {response.status_code} {response.reason_phrase}, "
            "which a service does not answer (a proxy in between?)",
            url=self.url + path,
        )

    # -- life cycle ---------------------------------------------------------------------
    def close(self) -> None:
        """Close the connections to the host."""
        self._http.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<shipyard.Connection {self.url} services: {', '.join(self._services)}>"


class RemoteService:
    """A service of a host; its endpoints are its methods (``client.ranker.home(...)``), and
    its items too (``client.ranker["top-k"]``)."""

    _endpoints: dict[str, str] = {}  # endpoint -> method name, set per service class

    def __init__(self, connection: Connection, name: str) -> None:
        self._connection = connection
        self._name = name

    def __getitem__(self, endpoint: str) -> Callable[..., Any]:
        method = self._endpoints.get(endpoint)
        if method is None:
            known = ", ".join(self._endpoints) or "none"
            raise KeyError(f"service {self._name!r} has no endpoint {endpoint!r} ({known})")
        return getattr(self, method)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<service {self._name!r} of {self._connection.url}>"


def attribute_name(name: str) -> str:
    """The attribute a service or endpoint name is read as: ``home-rows`` -> ``home_rows``."""
    attribute = name.replace("-", "_")
    return attribute + "_" if keyword.iskeyword(attribute) else attribute


def class_name(service: str) -> str:
    """``home-rows`` -> ``HomeRows``: the name of a service's class (in ``help()``)."""
    return "".join(part.capitalize() for part in re.split(r"[-_]", service) if part) or "Service"


def _service_class(
    service: str, about: str, endpoints: list[Endpoint], types: Types, url: str
) -> type[RemoteService]:
    """A subclass of :class:`RemoteService` with one method per endpoint."""
    name = class_name(service)
    namespace: dict[str, Any] = {
        "__doc__": (about or f"The {service!r} service.") + f"\n\nAt {url}/{service}/.",
        "__module__": __name__,
        "__qualname__": name,
        "_endpoints": {},
    }
    for endpoint in sorted(endpoints, key=lambda e: e.name):
        method = attribute_name(endpoint.name)
        if method in namespace or hasattr(RemoteService, method):
            method = f"{method}_"  # top-k beside top_k, or an endpoint named like a dunder
        namespace[method] = endpoint_function(endpoint, types, name, method, url)
        namespace["_endpoints"][endpoint.name] = method
    return type(name, (RemoteService,), namespace)


def endpoint_function(
    endpoint: Endpoint, types: Types, owner: str, method: str, url: str
) -> Callable[..., Any]:
    """The method that calls ``endpoint``: a real signature, annotations and docstring."""
    operation = endpoint.operation
    request = _json_schema(operation.get("requestBody"))
    response = _json_schema((operation.get("responses") or {}).get("200"))
    node = types.resolve(request)
    properties = properties_of(node)
    required = required_of(node)
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
    annotations: dict[str, Any] = {}
    for field, schema in properties.items():
        if not field.isidentifier() or keyword.iskeyword(field) or field == "self":
            continue  # not a Python name: sent with **fields below
        annotation = types.annotation(schema)
        default = inspect.Parameter.empty
        if field not in required:
            given = schema.get("default", UNSET) if isinstance(schema, Mapping) else UNSET
            default = given
        parameters.append(
            inspect.Parameter(
                field, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )
        annotations[field] = annotation
    unusual = [f for f in properties if f not in annotations]
    if unusual:
        parameters.append(inspect.Parameter("fields", inspect.Parameter.VAR_KEYWORD))
    returns = types.annotation(response) if response is not None else Any
    annotations["return"] = returns
    signature = inspect.Signature(parameters, return_annotation=returns)
    service, name = endpoint.service, endpoint.name

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{service}.{method}(): {exc}") from None
        arguments = dict(bound.arguments)
        this: RemoteService = arguments.pop("self")
        arguments.update(arguments.pop("fields", {}) if unusual else {})
        sent = {k: v for k, v in arguments.items() if v is not UNSET}
        return this._connection.call(service, name, sent)

    call.__name__ = method
    call.__qualname__ = f"{owner}.{method}"
    call.__module__ = __name__
    call.__signature__ = signature  # type: ignore[attr-defined]
    call.__annotations__ = annotations
    call.__doc__ = _docstring(endpoint, types, request, response, properties, required, url)
    return call


def _json_schema(part: Any) -> Any:
    if not isinstance(part, Mapping):
        return None
    return ((part.get("content") or {}).get("application/json") or {}).get("schema")


def _docstring(
    endpoint: Endpoint,
    types: Types,
    request: Any,
    response: Any,
    properties: Mapping[str, Any],
    required: list[str],
    url: str,
) -> str:
    operation = endpoint.operation
    summary = str(operation.get("summary") or "")
    lines = [summary if summary and summary != endpoint.name else f"Call {endpoint.path}."]
    if operation.get("description"):
        lines += ["", str(operation["description"]).strip()]
    extra = operation.get("x-shipyard")
    if isinstance(extra, Mapping) and extra.get("batch"):
        lines += ["", "Batched on the host: concurrent calls share one call of the model."]
    lines += ["", f"``POST {url}{endpoint.path}``", "", "Parameters", "----------"]
    if not properties:
        lines.append("(none)")
    for field, schema in properties.items():
        lines.append(f"{field} : {types.describe(schema, required=field in required)}")
        about = types.resolve(schema).get("description")
        if about:
            lines.append(f"    {about}")
    lines += ["", "Returns", "-------", types.words(response) if response is not None else "Any"]
    about = types.resolve(response).get("description") if response is not None else None
    if about:
        lines.append(f"    {about}")
    used = [*types.objects(request), *(types.objects(response) if response is not None else [])]
    objects = [o for o in dict.fromkeys(used) if o != types.ref_name(request)]  # not the request
    if objects:
        lines += ["", "Objects (sent and received as dicts)", "------------------------------"]
        shown = set()
        for name in objects:
            described = (types.title(name), *types.fields(name))
            if described not in shown:  # pydantic's Node-Input and Node-Output: one Node
                shown.add(described)
                lines += [described[0], *(f"    {line}" for line in described[1:])]
    lines += [
        "",
        "Raises",
        "------",
        "shipyard.HTTPError",
        "    for an error answer (422 a bad argument, 500 the endpoint failed...), with",
        "    ``status``, ``type``, ``message``, ``field`` and the whole ``body``.",
    ]
    return "\n".join(lines)


def _error(response: httpx.Response) -> HTTPError:
    """The :class:`shipyard.HTTPError` of an error answer."""
    try:
        decoded = response.json()
    except ValueError:
        decoded = None
    error = decoded.get("error") if isinstance(decoded, dict) else None
    status = response.status_code
    headers = dict(response.headers)
    if isinstance(error, dict):
        field = error.get("field")
        return HTTPError(
            status,
            str(error.get("message") or response.reason_phrase),
            field if isinstance(field, str) else None,
            type=str(error["type"]) if error.get("type") else None,
            error_id=error.get("error_id") if isinstance(error.get("error_id"), str) else None,
            body=decoded,
            headers=headers,
        )
    text = response.text.strip() or response.reason_phrase
    body = decoded if isinstance(decoded, dict) else {}
    return HTTPError(status, text, body=body, headers=headers)


def _jsonable(value: Any) -> Any:
    """What ``json.dumps`` cannot write itself: numpy values, pydantic models, dataclasses,
    dates and UUIDs, as the service reads them."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
