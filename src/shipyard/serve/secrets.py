"""Secrets for deployed services, passed by reference and resolved by the host.

``shipyard deploy service.py:Ranker --name ranker --secret API_KEY=env:RANKER_API_KEY`` (a
variable of the host's environment) or ``--secret API_KEY=file:/run/secrets/ranker`` (a
file the host reads). The deployment record keeps the reference, never the value: the host
resolves it with :func:`resolve_secrets` each time it starts a worker and puts the value in
that worker's environment only. Nothing writes it anywhere; errors name the secret and its
reference, never the value.

A reference is read with the host's own access, so whoever holds an admin key may name any
variable of the host's environment or any file the host can read, except files under
``SHIPYARD_HOME`` (the admin token, the cache's signing key, the metadata database), which
no reference may name.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

from shipyard.serve.errors import ServeError

#: the most secrets one deployment may have
MAX_SECRETS = 64
#: the largest secret file the host reads
MAX_FILE_BYTES = 64 << 10
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}\Z")
_MAX_REFERENCE = 4096


class SecretError(ServeError):
    """A secret whose reference is malformed or whose value the host cannot read now.

    ``name`` is the worker's variable, ``reference`` what the deploy gave (``env:VAR`` or
    ``file:PATH``), ``reason`` what is wrong; the value never appears in any of them. Text
    that is no reference (perhaps the secret itself, given by mistake) is not repeated:
    ``name`` or ``reference`` is then None."""

    def __init__(self, name: str | None, reference: str | None, reason: str) -> None:
        where = f"secret {name}" if name is not None else "a secret"
        if reference is not None:
            where += f" ({reference})"
        super().__init__(f"{where}: {reason}")
        self.name, self.reference, self.reason = name, reference, reason


_FORM = (
    "NAME=env:VARIABLE (the host's environment) or NAME=file:/absolute/path (a file the host reads)"
)


def parse_secret(item: str) -> tuple[str, str]:
    """``"API_KEY=env:RANKER_API_KEY"`` -> ``("API_KEY", "env:RANKER_API_KEY")``, checked
    by :func:`check_reference`. Raises :class:`SecretError`."""
    name, sep, reference = item.partition("=")
    if not sep:
        raise SecretError(None, None, f"expected {_FORM}, e.g. API_KEY=env:RANKER_API_KEY")
    check_reference(name, reference)
    return name, reference


def check_reference(name: str, reference: str) -> None:
    """Refuse a malformed secret: ``name`` must be an environment variable's name and
    ``reference`` ``env:VARIABLE`` or ``file:/absolute/path``. Raises :class:`SecretError`;
    reads nothing."""
    if not _NAME.match(name):
        raise SecretError(
            None, None, "its name must be an environment variable's name (letters, digits "
            f"and _, not starting with a digit), as in {_FORM}"
        )  # fmt: skip
    if len(reference) > _MAX_REFERENCE:
        raise SecretError(name, None, f"the reference is longer than {_MAX_REFERENCE} characters")
    scheme, sep, target = reference.partition(":")
    if sep and scheme == "env":
        if not _NAME.match(target):
            raise SecretError(name, reference, f"{target!r} is not an environment variable's name")
        return
    if sep and scheme == "file":
        if not target.startswith("/") or "\0" in target:
            raise SecretError(
                name, reference, "file: needs an absolute path on the host, e.g. "
                "file:/run/secrets/ranker"
            )  # fmt: skip
        return
    raise SecretError(  # not repeated: it may be the secret itself, given by mistake
        name, None, f"that is no reference; expected {_FORM}"
    )


def resolve_secrets(refs: Mapping[str, str]) -> dict[str, str]:
    """The value of each secret in ``refs`` (name -> reference), read now by this process:
    for a worker's environment, and nowhere else. Raises :class:`SecretError` for the first
    one that is malformed, missing, empty or unreadable.

    >>> resolve_secrets({"API_KEY": "env:RANKER_API_KEY"})  # doctest: +SKIP
    {'API_KEY': '...'}
    """
    values = {}
    for name, reference in refs.items():
        check_reference(name, reference)
        scheme, _, target = reference.partition(":")
        if scheme == "env":
            value = _from_env(name, reference, target)
        else:
            value = _from_file(name, reference, Path(target))
        if value == "":
            raise SecretError(name, reference, "the value is empty")
        if "\0" in value:
            raise SecretError(
                name, reference, "the value holds a NUL byte, which no environment can"
            )
        values[name] = value
    return values


def _from_env(name: str, reference: str, variable: str) -> str:
    value = os.environ.get(variable)
    if value is None:
        raise SecretError(
            name,
            reference,
            f"the host has no environment variable {variable}; set it where `shipyard "
            "serve` starts",
        )
    return value


def _from_file(name: str, reference: str, path: Path) -> str:
    """The file's text, less one trailing newline (``echo`` adds one, a key never ends in
    one). Opened without blocking, so a FIFO cannot hang the host, and refused when what
    was opened lies under ``SHIPYARD_HOME``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SecretError(name, reference, f"the host cannot read {path}: {exc.strerror}") from None
    try:
        if _under_home(fd, path):
            raise SecretError(
                name,
                reference,
                "files under SHIPYARD_HOME are shipyard's own (admin token, signing key, "
                "metadata) and never a secret's source; keep the secret elsewhere, e.g. "
                "/run/secrets/",
            )
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretError(name, reference, f"{path} is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise SecretError(name, reference, f"{path} is larger than {MAX_FILE_BYTES} bytes")
        data = _read(fd, MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SecretError(name, reference, f"the host cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise SecretError(name, reference, f"{path} is larger than {MAX_FILE_BYTES} bytes")
    text = os.fsdecode(data)
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


def _read(fd: int, limit: int) -> bytes:
    parts, size = [], 0
    while size < limit:
        part = os.read(fd, limit - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _under_home(fd: int, path: Path) -> bool:
    """Whether the opened file lies under SHIPYARD_HOME: judged by what was opened (Linux
    names it in /proc), not by the path, so a symbolic link swapped in between cannot
    slip past."""
    from shipyard.config import home

    try:
        opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        opened = path.resolve()
    return opened.is_relative_to(home())


__all__ = [
    "MAX_FILE_BYTES",
    "MAX_SECRETS",
    "SecretError",
    "check_reference",
    "parse_secret",
    "resolve_secrets",
]
