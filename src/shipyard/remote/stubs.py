"""A ``.pyi`` stub of a host's services, for a type checker and an editor that read files
rather than run code (``shipyard stub URL -o services.pyi``)::

    from typing import TYPE_CHECKING, cast
    import shipyard

    if TYPE_CHECKING:
        from services import Services      # services.pyi, written by `shipyard stub`

    client = cast("Services", shipyard.connect(url, key))
    client.ranker.home(profile_id=1)       # mypy: Argument "profile_id" has incompatible type

The stub holds what :func:`shipyard.connect` builds at run time: one class per service with
its endpoints' signatures and docstrings, and ``Services``, a ``Connection`` with each
service as an attribute.
"""

from __future__ import annotations

import inspect
import keyword
from typing import Any

from shipyard.remote.connection import UNSET, Connection, attribute_name
from shipyard.remote.schema import show

__all__ = ["stub"]


def stub(connection: Connection) -> str:
    """The ``.pyi`` text of ``connection``'s services."""
    lines = [
        f'"""The services of {connection.url}, as `shipyard stub` read them.',
        "",
        "    from typing import TYPE_CHECKING, cast",
        "    if TYPE_CHECKING:",
        "        from <this module> import Services",
        '    client = cast("Services", shipyard.connect(url, key))',
        '"""',
        "",
        "from typing import Any, Literal",
        "",
        "from shipyard.remote import Connection, RemoteService",
        "",
    ]
    attributes = []
    taken = {"Any", "Literal", "Connection", "RemoteService", "Services"}
    for name in connection.services:
        remote = connection[name]
        cls = type(remote)
        class_name = cls.__name__
        while class_name in taken:  # a service called `services`, or `home-rows` and `homerows`
            class_name += "_"
        taken.add(class_name)
        lines += ["", f"class {class_name}(RemoteService):"]
        lines += _docstring(cls.__doc__ or "", "    ")
        for endpoint, method in type(remote)._endpoints.items():
            function = getattr(cls, method)
            lines += ["", f"    def {method}{_signature(function)}:"]
            lines += _docstring(function.__doc__ or f"POST /{name}/{endpoint}", "        ")
            lines.append("        ...")
        attribute = attribute_name(name)
        if not keyword.iskeyword(attribute) and not hasattr(Connection, attribute):
            attributes.append(f"    {attribute}: {class_name}")
    lines += ["", "", "class Services(Connection):"]
    lines += ['    """The services of the host, as attributes."""', ""]
    lines += attributes or ["    pass"]
    return "\n".join(lines) + "\n"


def _signature(function: Any) -> str:
    signature = inspect.signature(function)
    parts = []
    star = False
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            parts.append(parameter.name)
            continue
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            parts.append(f"**{parameter.name}: Any")
            continue
        if not star:
            parts.append("*")
            star = True
        text = f"{parameter.name}: {show(parameter.annotation)}"
        if parameter.default is not inspect.Parameter.empty:
            text += f" = {_default(parameter.default)}"
        parts.append(text)
    return f"({', '.join(parts)}) -> {show(signature.return_annotation)}"


def _default(value: Any) -> str:
    """A default as a stub writes it: a short literal, else ``...``."""
    if value is UNSET:
        return "..."
    if value is None or isinstance(value, bool | int | float | str):
        text = repr(value)
        return text if len(text) <= 40 else "..."
    return "..."


def _docstring(text: str, indent: str) -> list[str]:
    body = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').strip()
    if not body:
        return []
    lines = body.splitlines()
    out = [f'{indent}"""{lines[0]}']
    out += [f"{indent}{line}" if line.strip() else "" for line in lines[1:]]
    if len(lines) == 1:
        out[0] += '"""'
    else:
        out.append(f'{indent}"""')
    return out
