"""What a data scientist writes to host a model: a ``Service`` class of ``@endpoint`` methods.

```python
class Ranker(Service):
    def load(self) -> None:          # optional; once per worker, before it is ready
        self.model = Model("ranker@prod").load()

    @endpoint
    def home(self, profile_id: str, limit: int = 10) -> list[str]: ...

    @endpoint(batch=True, max_batch_size=64, max_wait_ms=5)
    def score(self, pairs: list[Pair]) -> list[float]: ...
```

``collect_endpoints`` reads a class into ``EndpointSpec`` rows (definition order) and checks
everything that can be checked before a request arrives; a mistake raises
``ServiceDefinitionError`` naming the class, the method, file:line and the fix.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from shipyard.serve.errors import ServeError

__all__ = [
    "EndpointOptions",
    "EndpointSpec",
    "Parameter",
    "Service",
    "ServiceDefinitionError",
    "collect_endpoints",
    "endpoint",
    "show_hint",
]

ENDPOINT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
DEFAULT_TIMEOUT = 30.0
#: the most threads ``@endpoint(concurrency=N)`` may give one endpoint: each thread keeps a
#: stack and a share of the GIL, and an endpoint that waits on that many calls at once is
#: better written ``async def`` (the host also sends a replica at most ``--max-in-flight``
#: calls at a time, 64 by default)
MAX_CONCURRENCY = 1024
_MARK = "__shipyard_endpoint__"

F = TypeVar("F", bound=Callable[..., Any])


class ServiceDefinitionError(ServeError):
    """A ``Service`` class that cannot be served; the message says where and how to fix it."""

    def __init__(
        self,
        message: str,
        *,
        service: str | None = None,
        method: str | None = None,
        source_file: str | None = None,
        lineno: int | None = None,
    ) -> None:
        where = ""
        if service or method:
            where = ".".join(p for p in (service, method) if p)
            if source_file:
                where += f" ({source_file}:{lineno})"
            where += ": "
        super().__init__(where + message)
        self.service = service
        self.method = method
        self.source_file = source_file
        self.lineno = lineno


class Service:
    """Base class of a hosted service. Override ``load()`` to load models once per worker.

    Every method decorated with ``@endpoint`` is served at ``POST /{service}/{endpoint}``.
    """

    def load(self) -> None:
        """Called once per worker process, before it reports ready. No-op by default."""


@dataclass(frozen=True)
class EndpointOptions:
    """The options given to ``@endpoint``."""

    name: str | None = None
    batch: bool = False
    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    timeout: float = DEFAULT_TIMEOUT
    contract: Any = None
    #: threads of the endpoint's own pool (None: the sync endpoint runs inline)
    concurrency: int | None = None


@dataclass(frozen=True)
class Parameter:
    """One parameter of an endpoint: its name, resolved type hint and default."""

    name: str
    hint: Any
    default: Any = inspect.Parameter.empty

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


@dataclass(frozen=True)
class EndpointSpec:
    """An endpoint as read from its class: everything needed to build validators and docs."""

    name: str
    method: str
    function: Callable[..., Any]
    options: EndpointOptions
    parameters: tuple[Parameter, ...]
    returns: Any
    is_async: bool
    source_file: str
    lineno: int
    doc: str

    @property
    def item_type(self) -> Any:
        """The item type of a batch endpoint's list parameter (``Pair`` for ``list[Pair]``)."""
        return typing.get_args(_strip_annotated(self.parameters[0].hint))[0]


@overload
def endpoint(fn: F, /) -> F: ...


@overload
def endpoint(
    *,
    name: str | None = None,
    batch: bool = False,
    max_batch_size: int | None = None,
    max_wait_ms: float | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    contract: Any = None,
    concurrency: int | None = None,
) -> Callable[[F], F]: ...


def endpoint(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    batch: bool = False,
    max_batch_size: int | None = None,
    max_wait_ms: float | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    contract: Any = None,
    concurrency: int | None = None,
) -> F | Callable[[F], F]:
    """Serve a method of a ``Service`` at ``POST /{service}/{name}`` (name: the method's).

    ``batch=True``: the method takes one ``list[X]`` parameter and returns a list of the same
    length; items from concurrent requests are joined into calls of at most
    ``max_batch_size`` items, waiting at most ``max_wait_ms`` for more. ``timeout`` (seconds)
    is enforced by the host's front process. ``contract`` is checked on every response: a
    type (validated like an annotation, e.g. ``Annotated[list[float], Len(384, 384)]``) or a
    callable returning ``True`` for a good value; a callable of two parameters,
    ``check(value, request)``, also gets the request's arguments by name (for a batch
    endpoint, that request's list), to check the answer against what was asked.

    ``concurrency=N`` (a ``def`` endpoint only): run calls in a pool of N threads of the
    endpoint's own, for an endpoint that spends its time waiting (I/O, a remote model).
    By default (``None``) a ``def`` endpoint runs inline, one call at a time per replica:
    the fastest for a model that keeps the CPU busy.
    """

    def mark(function: F) -> F:
        where = _location(function)
        qualname = getattr(function, "__qualname__", repr(function))

        def fail(message: str) -> ServiceDefinitionError:
            return ServiceDefinitionError(
                message, method=qualname, source_file=where[0], lineno=where[1]
            )

        if not batch and (max_batch_size is not None or max_wait_ms is not None):
            raise fail("max_batch_size and max_wait_ms only apply with batch=True; add it")
        size = 64 if max_batch_size is None else max_batch_size
        wait = 5.0 if max_wait_ms is None else max_wait_ms
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 65535:
            raise fail(f"max_batch_size must be an int from 1 to 65535, got {size!r}")
        if not isinstance(wait, int | float) or not 0 <= wait <= 60_000:
            raise fail(f"max_wait_ms must be a number of milliseconds >= 0, got {wait!r}")
        if not isinstance(timeout, int | float) or timeout <= 0:
            raise fail(f"timeout must be a positive number of seconds, got {timeout!r}")
        if name is not None and not ENDPOINT_NAME.fullmatch(name):
            raise fail(f"endpoint name {name!r} must match {ENDPOINT_NAME.pattern}")
        if concurrency is not None:
            _check_concurrency(concurrency, batch, inspect.iscoroutinefunction(function), fail)
        options = EndpointOptions(
            name, batch, size, float(wait), float(timeout), contract, concurrency
        )
        setattr(function, _MARK, options)
        return function

    if fn is not None:
        if not callable(fn):
            raise TypeError(f"@endpoint decorates a method, got {fn!r}")
        return mark(fn)
    return mark


def _check_concurrency(
    concurrency: Any,
    batch: bool,
    is_async: bool,
    fail: Callable[[str], ServiceDefinitionError],
) -> None:
    """``concurrency=`` is for a plain ``def`` endpoint, from 1 to MAX_CONCURRENCY threads."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int):
        raise fail(f"concurrency must be an int (threads), got {concurrency!r}")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise fail(
            f"concurrency must be from 1 to {MAX_CONCURRENCY} threads, got {concurrency}; "
            "an endpoint that waits on more calls at once is better written `async def`"
        )
    if is_async:
        raise fail(
            "concurrency= is for `def` endpoints; an `async def` one already runs its calls "
            "concurrently on the worker's event loop (wait with `await`): remove concurrency="
        )
    if batch:
        raise fail(
            "concurrency= does not apply with batch=True: batching is how a batch endpoint "
            "serves concurrent requests (one call over many); remove concurrency="
        )


def collect_endpoints(cls: type) -> list[EndpointSpec]:
    """The endpoints of a ``Service`` subclass in definition order (base classes first)."""
    if not (isinstance(cls, type) and issubclass(cls, Service)):
        raise ServiceDefinitionError(
            f"{cls!r} is not a Service subclass; write `class X(shipyard.Service): ...`"
        )
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            if callable(value) and hasattr(value, _MARK):
                found[attr] = value
            elif attr in found:  # overridden without @endpoint: no longer an endpoint
                del found[attr]
    if not found:
        file, line = _location(cls)
        raise ServiceDefinitionError(
            "the class has no endpoints; decorate at least one method with @endpoint",
            service=cls.__qualname__,
            source_file=file,
            lineno=line,
        )
    specs = [_read_endpoint(cls, attr, fn) for attr, fn in found.items()]
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            raise _error(
                cls,
                spec.function,
                f"endpoint name {spec.name!r} is also used by "
                f"{seen[spec.name]}(); give one of them another name=",
            )
        seen[spec.name] = spec.method
    return specs


def _read_endpoint(cls: type, attr: str, fn: Callable[..., Any]) -> EndpointSpec:
    options: EndpointOptions = getattr(fn, _MARK)
    if isinstance(inspect.getattr_static(cls, attr), staticmethod | classmethod):
        raise _error(cls, fn, "an endpoint must be a plain method taking self")
    name = options.name or attr
    if not ENDPOINT_NAME.fullmatch(name):
        raise _error(
            cls,
            fn,
            f"endpoint name {name!r} must match {ENDPOINT_NAME.pattern}; rename the "
            "method or pass @endpoint(name='...')",
        )
    hints = _resolve_hints(cls, fn)
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    if not params or params[0].name != "self":
        raise _error(cls, fn, "an endpoint is a method: its first parameter must be self")
    parameters: list[Parameter] = []
    for param in params[1:]:
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise _error(
                cls,
                fn,
                f"parameter {param.name!r} is {param.kind.description}; endpoints "
                "take named parameters only (the JSON object's keys)",
            )
        if param.name.startswith("_"):
            raise _error(cls, fn, f"parameter {param.name!r} starts with '_'; rename it")
        if param.name not in hints:
            raise _error(
                cls,
                fn,
                f"parameter {param.name!r} has no type hint; annotate it, e.g. "
                f"`{param.name}: str` (requests are validated against the hints)",
            )
        parameters.append(Parameter(param.name, hints[param.name], param.default))
    if "return" not in hints:
        raise _error(
            cls,
            fn,
            "the method has no return annotation; add one, e.g. `-> dict[str, Any]` "
            "(responses are serialized and documented from it)",
        )
    returns = hints["return"]
    if options.batch:
        _check_batch(cls, fn, parameters, returns)
    file, line = _location(fn)
    return EndpointSpec(
        name=name,
        method=attr,
        function=fn,
        options=options,
        parameters=tuple(parameters),
        returns=returns,
        is_async=inspect.iscoroutinefunction(fn),
        source_file=file,
        lineno=line,
        doc=inspect.cleandoc(fn.__doc__ or ""),
    )


def _check_batch(
    cls: type, fn: Callable[..., Any], parameters: list[Parameter], returns: Any
) -> None:
    fix = (
        "a batch endpoint is written over lists, e.g. `def score(self, pairs: list[Pair]) "
        "-> list[float]`"
    )
    if len(parameters) != 1 or not _is_list(parameters[0].hint):
        got = ", ".join(f"{p.name}: {show_hint(p.hint)}" for p in parameters) or "none"
        raise _error(cls, fn, f"batch=True needs exactly one list parameter (got {got}); {fix}")
    if not parameters[0].required:
        raise _error(
            cls,
            fn,
            f"the list parameter {parameters[0].name!r} of a batch "
            "endpoint cannot have a default; remove it",
        )
    if not _is_list(returns):
        raise _error(
            cls, fn, f"batch=True needs a list return annotation, got {show_hint(returns)}; {fix}"
        )


def _resolve_hints(cls: type, fn: Callable[..., Any]) -> dict[str, Any]:
    import sys

    module = sys.modules.get(getattr(fn, "__module__", ""), None)
    localns = dict(vars(module)) if module else {}
    localns.update(vars(cls))
    localns.setdefault(cls.__name__, cls)
    try:
        return typing.get_type_hints(fn, localns=localns, include_extras=True)
    except NameError as exc:
        raise _error(
            cls,
            fn,
            f"cannot resolve a type hint ({exc}); define the type at module level "
            "so the worker can import it",
        ) from None
    except Exception as exc:  # a malformed annotation
        raise _error(cls, fn, f"invalid type hint: {exc}") from None


def _strip_annotated(hint: Any) -> Any:
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return hint


def _is_list(hint: Any) -> bool:
    hint = _strip_annotated(hint)
    return typing.get_origin(hint) is list and len(typing.get_args(hint)) == 1


def show_hint(hint: Any) -> str:
    """A type hint as a user wrote it: ``list[Pair]``, ``int``."""
    if isinstance(hint, type) and not isinstance(hint, types.GenericAlias):
        return hint.__name__
    return repr(hint).replace("typing.", "")


def _location(obj: Any) -> tuple[str, int]:
    code = getattr(inspect.unwrap(obj) if callable(obj) else obj, "__code__", None)
    if code is not None:
        return code.co_filename, code.co_firstlineno
    try:  # a class: read its source once, only on this error path
        return inspect.getsourcefile(obj) or "<unknown>", inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return "<unknown>", 0


def _error(cls: type, fn: Callable[..., Any], message: str) -> ServiceDefinitionError:
    file, line = _location(fn)
    return ServiceDefinitionError(
        message,
        service=cls.__qualname__,
        method=getattr(fn, "__name__", "?"),
        source_file=file,
        lineno=line,
    )
