"""A YAML document with the line of every value, so config errors can say ``file:line``.

:func:`parse` composes the YAML (nodes carry their marks) and builds plain Python values,
remembering for each path (a tuple of mapping keys and list indexes) the line it starts on.
Duplicate mapping keys are refused, which ``yaml.safe_load`` would silently merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from shipyard.gateway.errors import ConfigError

Path = tuple[str | int, ...]


@dataclass
class Source:
    """Parsed YAML: ``data`` and the 1-based line of each path in it."""

    file: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)

    def error(self, path: Sequence[str | int], reason: str) -> ConfigError:
        """A ConfigError for ``path``: ``file:line: reason``."""
        return ConfigError(self.file, self.line(path), reason)


def parse(text: str, file: str) -> Source:
    """Parse one YAML document; a syntax error is a ConfigError with its line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        source = Source(file, None)
        if node is not None:
            source.data = _build(loader, node, (), source.lines)
        return source
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(file, line, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path, lines: dict[Path, int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merges
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"mapping key {key!r} must be a string", key_node.start_mark
                )
            if key in result:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            child = (*path, str(key))
            lines[child] = key_node.start_mark.line + 1
            result[key] = _build(loader, value_node, child, lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


__all__ = ["Source", "parse"]
