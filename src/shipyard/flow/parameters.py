"""``Parameter`` and ``IncludeFile``: the flow's inputs, given on the command line or to Runner.

They are data descriptors on the flow class: inside a step, ``self.alpha`` is the run's
value (stored as an artifact of the run, so every step sees the same one) and assigning to
it is an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shipyard.flow.exceptions import ParameterError

_MISSING: Any = object()

#: option names the run command uses itself; a Parameter may not take them
RESERVED_NAMES = frozenset(
    {
        "max-workers",
        "max_workers",
        "tag",
        "run-id-file",
        "run_id_file",
        "quiet",
        "help",
        "flow",
        "shipyard-trigger",
        "shipyard_trigger",
    }
)


class JSONType:
    """``type=JSONType`` parses the option's value as JSON (lists, dicts)."""

    name = "json"


class Parameter:
    """A flow parameter, settable as ``--name VALUE``.

    >>> class Train(FlowSpec):
    ...     alpha = Parameter("alpha", default=0.1, help="learning rate")
    ...     grid = Parameter("grid", type=JSONType, default="[1, 2]")

    ``type`` is inferred from ``default`` when not given (str when neither is given);
    supported: ``str``, ``int``, ``float``, ``bool`` (a ``--name/--no-name`` flag) and
    :class:`JSONType`.
    """

    def __init__(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        type: Any = None,  # noqa: A002 - Metaflow's spelling
        help: str | None = None,  # noqa: A002
        required: bool = False,
    ) -> None:
        if not isinstance(name, str) or not name.replace("_", "a").replace("-", "a").isalnum():
            raise ParameterError(
                f"Parameter name {name!r} is not usable as a command-line option",
                hint="use letters, digits, '-' and '_' only, e.g. Parameter('alpha')",
            )
        if name in RESERVED_NAMES:
            raise ParameterError(
                f"Parameter name {name!r} is reserved by the run command",
                hint=f"rename it, e.g. Parameter('{name}_value')",
            )
        self.name = name
        self.default = default
        self.help = help
        self.required = required
        self.type = type if type is not None else _infer_type(name, default)
        self.attr: str = name  # set by __set_name__

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._artifact(self.attr)

    def __set__(self, obj: Any, value: Any) -> None:
        raise ParameterError(
            f"Parameter {self.name!r} is read-only inside a flow",
            hint=f"store a derived value under another name, e.g. self.{self.attr}_used = ...",
        )

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    def convert(self, value: Any) -> Any:
        """Check and convert a value given from Python (Runner); the CLI uses click types."""
        try:
            if self.type is JSONType:
                return json.loads(value) if isinstance(value, str) else value
            if self.type is bool and isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return value if isinstance(value, self.type) else self.type(value)
        except (ValueError, TypeError, json.JSONDecodeError):
            type_name = getattr(self.type, "__name__", str(self.type))
            raise ParameterError(
                f"parameter {self.name!r}: {value!r} is not a valid {type_name}"
            ) from None

    def value_for_run(self, given: Any) -> Any:
        """The artifact value for a run given the raw option value (``_MISSING`` if absent)."""
        if given is _MISSING or given is None:
            if self.required:
                raise ParameterError(
                    f"parameter {self.name!r} is required", hint=f"pass --{self.name}"
                )
            if not self.has_default:
                return None
            given = self.default
        return self.convert(given)


class IncludeFile(Parameter):
    """A file whose *contents* become an artifact: ``--data path/to/file.csv``.

    The file is read when the run starts (a missing file stops the run before anything
    runs); the run stores the contents, so later readers do not need the file.
    """

    def __init__(
        self,
        name: str,
        default: str | None = None,
        *,
        is_text: bool = True,
        encoding: str = "utf-8",
        help: str | None = None,  # noqa: A002
        required: bool = False,
    ) -> None:
        super().__init__(
            name,
            default if default is not None else _MISSING,
            type=str,
            help=help,
            required=required,
        )
        self.is_text = is_text
        self.encoding = encoding

    def value_for_run(self, given: Any) -> Any:
        path = super().value_for_run(given)
        if path is None:
            return None
        file = Path(path).expanduser()
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise ParameterError(
                f"--{self.name}: cannot read {str(file)!r}: {exc.strerror or exc}"
            ) from None
        if not self.is_text:
            return data
        try:
            return data.decode(self.encoding)
        except UnicodeDecodeError:
            raise ParameterError(
                f"--{self.name}: {str(file)!r} is not {self.encoding} text",
                hint=f"use IncludeFile({self.name!r}, is_text=False) for binary files",
            ) from None


def _infer_type(name: str, default: Any) -> Any:
    if default is _MISSING or default is None:
        return str
    if isinstance(default, bool):
        return bool
    if isinstance(default, int | float | str):
        return type(default)
    if isinstance(default, list | dict):
        return JSONType
    raise ParameterError(
        f"Parameter {name!r}: cannot infer a type from default {default!r}",
        hint="pass type=str, int, float, bool or JSONType",
    )


def flow_parameters(flow_cls: type) -> list[Parameter]:
    """The class's parameters in definition order (base classes first)."""
    seen: dict[str, Parameter] = {}
    for klass in reversed(flow_cls.__mro__):
        for value in vars(klass).values():
            if isinstance(value, Parameter):
                seen[value.attr] = value
    names: dict[str, str] = {}
    for p in seen.values():
        if p.name in names:
            raise ParameterError(
                f"two parameters are named {p.name!r} ({names[p.name]} and {p.attr})"
            )
        names[p.name] = p.attr
    return list(seen.values())
