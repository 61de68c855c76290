"""A feature set's version: a hash of what its code *means*, not how it is written.

Each ``@feature`` function (and its ``vectorized`` form) is hashed as its normalised AST:
parsed from its source, its decorators and docstring dropped, dumped without line or column
numbers - so a comment, a blank line, a reformatting or a docstring does not change the
version. Every global name the function reads is then resolved, transitively:

- a function or class of the *project* (any module not installed in site-packages or the
  standard library: the flow's file, the service's file, their helpers) is hashed the same
  way, and what it reads in turn;
- a project constant (a number, a string, a tuple / list / dict / set of those, ...) is hashed
  by its value, so changing ``KM_PER_MILE`` changes the version;
- a project module read through an attribute (``helpers.scale(...)``) contributes the
  attribute it names;
- anything from an installed library (``numpy.log1p``, ``math.sqrt``) is recorded by its name
  and the library's version (``numpy==2.3.1``), never its source: upgrading numpy changes the
  version, reading numpy's code does not;
- builtins are recorded by name.

>>> version_of([("f", f)])  # doctest: +SKIP
'3f2a9c0d41be'
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import inspect
import sys
import sysconfig
import textwrap
import types
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["code_hash", "version_of"]

_VERSION_CHARS = 16
_SCALARS = (int, float, complex, str, bytes, bool, type(None))


def version_of(entries: Iterable[tuple[str, Any]]) -> str:
    """The version of ordered ``(label, object)`` entries (each feature's function, its
    vectorised form, the lookups' declarations): 16 hex characters."""
    digest = hashlib.sha256()
    seen: dict[int, str] = {}
    for label, obj in entries:
        digest.update(f"{label}\0{_describe(obj, seen)}\0".encode())
    return digest.hexdigest()[:_VERSION_CHARS]


def code_hash(fn: Callable[..., Any]) -> str:
    """The hash of one function with everything it reads (for tests and messages)."""
    return hashlib.sha256(_describe(fn, {}).encode()).hexdigest()[:_VERSION_CHARS]


def _describe(obj: Any, seen: dict[int, str]) -> str:
    """A stable text for ``obj``: functions and classes of the project by their normalised
    code and what it reads; library objects by name and version; constants by value."""
    key = id(obj)
    if key in seen:
        return seen[key]
    seen[key] = f"<cycle {_qualname(obj)}>"  # a recursive function refers to itself
    text = _describe_new(obj, seen)
    seen[key] = text
    return text


def _describe_new(obj: Any, seen: dict[int, str]) -> str:
    if isinstance(obj, _SCALARS):
        return f"{type(obj).__name__}:{obj!r}"
    if isinstance(obj, tuple | list | frozenset | set):
        items = [_describe(v, seen) for v in obj]
        if isinstance(obj, frozenset | set):
            items.sort()
        return f"{type(obj).__name__}[{','.join(items)}]"
    if isinstance(obj, dict):
        pairs = sorted(f"{_describe(k, seen)}={_describe(v, seen)}" for k, v in obj.items())
        return f"dict{{{','.join(pairs)}}}"
    if isinstance(obj, types.ModuleType):
        if _is_project(obj):
            return f"module:{obj.__name__}"
        return f"module:{obj.__name__}=={_library_version(obj.__name__)}"
    wrapped = getattr(obj, "fn", None)  # a Feature read by another feature: its function
    if wrapped is not None and inspect.isfunction(wrapped) and not inspect.isfunction(obj):
        return "feature:" + _describe(wrapped, seen)
    module = getattr(obj, "__module__", None)
    if inspect.isfunction(obj) or inspect.isclass(obj):
        if module == "builtins":
            return f"builtin:{obj.__qualname__}"
        if module is not None and _is_project(sys.modules.get(module)):
            return _describe_code(obj, seen)
        return f"lib:{module}.{obj.__qualname__}=={_library_version(module)}"
    if isinstance(obj, types.BuiltinFunctionType | types.BuiltinMethodType):
        if module in (None, "builtins"):
            return f"builtin:{getattr(obj, '__qualname__', repr(obj))}"
        return f"lib:{module}.{obj.__qualname__}=={_library_version(module)}"
    # anything else (an instance): by its type, and its value when it is a plain container
    kind = type(obj)
    if _is_project(sys.modules.get(kind.__module__)):
        return f"instance:{_describe(kind, seen)}:{_safe_repr(obj)}"
    return f"instance:{kind.__module__}.{kind.__qualname__}=={_library_version(kind.__module__)}"


def _describe_code(obj: Any, seen: dict[int, str]) -> str:
    """A project function or class: its normalised AST, then each global it reads."""
    try:
        source = textwrap.dedent(inspect.getsource(obj))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):  # no source (made by exec): its bytecode
        code = getattr(obj, "__code__", None)
        body = code.co_code.hex() if code is not None else _qualname(obj)
        return f"code:{_qualname(obj)}:{body}"
    node = tree.body[0] if tree.body else tree
    _normalise(node)
    parts = [f"code:{ast.dump(node, annotate_fields=False, include_attributes=False)}"]
    for name, attrs in sorted(_reads(node)):
        value = _resolve(obj, name)
        if value is _MISSING:
            parts.append(f"{name}:?")
            continue
        if isinstance(value, types.ModuleType) and _is_project(value) and attrs:
            for attr in sorted(attrs):
                inner = getattr(value, attr, _MISSING)
                if inner is not _MISSING:
                    parts.append(f"{name}.{attr}:{_describe(inner, seen)}")
            continue
        parts.append(f"{name}:{_describe(value, seen)}")
    return "|".join(parts)


class _Missing:
    pass


_MISSING: Any = _Missing()


def _resolve(obj: Any, name: str) -> Any:
    """What ``name`` means inside ``obj``: a closure cell, a global of its module, a builtin."""
    closure = getattr(obj, "__closure__", None)
    code = getattr(obj, "__code__", None)
    if closure and code is not None:
        for var, cell in zip(code.co_freevars, closure, strict=False):
            if var == name:
                try:
                    return cell.cell_contents
                except ValueError:  # an empty cell
                    return _MISSING
    namespace = getattr(obj, "__globals__", None)
    if namespace is None:
        module = sys.modules.get(getattr(obj, "__module__", "") or "")
        namespace = vars(module) if module is not None else {}
    if name in namespace:
        return namespace[name]
    if hasattr(builtins, name):
        return getattr(builtins, name)
    return _MISSING


def _normalise(node: ast.AST) -> None:
    """Drop what does not change behaviour: decorators (``@feature`` itself), docstrings."""
    for child in ast.walk(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            child.decorator_list = []
            body = child.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                child.body = body[1:] or [ast.Pass()]


def _reads(node: ast.AST) -> set[tuple[str, frozenset[str]]]:
    """The free names ``node`` loads, each with the attributes read off it (``mod.x``)."""
    bound: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.arg):
            bound.add(child.arg)
        elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store | ast.Del):
            bound.add(child.id)
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if child is not node:
                bound.add(child.name)
        elif isinstance(child, ast.alias):  # a local import binds its name
            bound.add((child.asname or child.name).split(".")[0])
    attrs: dict[str, set[str]] = {}
    for child in ast.walk(node):
        if isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name):
            attrs.setdefault(child.value.id, set()).add(child.attr)
    names: set[tuple[str, frozenset[str]]] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
            if child.id not in bound:
                names.add((child.id, frozenset(attrs.get(child.id, ()))))
    return names


@lru_cache(maxsize=1)
def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs.update(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))
    return tuple(sorted(str(Path(d).resolve()) for d in dirs))


@lru_cache(maxsize=4096)
def _file_is_library(filename: str) -> bool:
    resolved = str(Path(filename).resolve())
    return any(resolved.startswith(d + "/") for d in _library_dirs())


def _is_project(module: types.ModuleType | None) -> bool:
    """A module of the user's project: not built in, not installed, not shipyard itself."""
    if module is None:
        return False
    name = module.__name__
    if name == "shipyard" or name.startswith("shipyard."):
        return False
    if name in sys.builtin_module_names or name in sys.stdlib_module_names:
        return False
    filename = getattr(module, "__file__", None)
    if filename is None:
        return name == "__main__"
    return not _file_is_library(filename)


@lru_cache(maxsize=1024)
def _library_version(module: str | None) -> str:
    if not module:
        return "?"
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "builtins":
        return "python{}.{}".format(*sys.version_info[:2])
    from importlib import metadata

    try:  # most import names are their distribution's name: one cheap lookup
        return f"{top}=={metadata.version(top)}"
    except (metadata.PackageNotFoundError, ValueError):
        pass
    dists = _distributions().get(top) or [top]
    for dist in dists:
        try:
            return f"{dist}=={metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    found = sys.modules.get(top)
    return str(getattr(found, "__version__", "?"))


@lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    """Top-level import name -> distributions (read once: it scans every installed one)."""
    from importlib import metadata

    return {k: list(v) for k, v in metadata.packages_distributions().items()}


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def _safe_repr(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception:
        return type(obj).__qualname__
    # a default repr carries an address that changes from one process to the next
    return type(obj).__qualname__ if " at 0x" in text else text
