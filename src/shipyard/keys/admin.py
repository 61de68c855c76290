"""The local admin token: ``$SHIPYARD_HOME/admin.token``, an ``admin`` key for this machine.

The host calls :func:`ensure_admin_token` at start-up; the ``shipyard`` command reads the file
with :func:`read_admin_token` and sends the token to the admin API (so the admin API needs a
token even on loopback, and only someone who can read the file gets one). The file is mode
0600, and a file that group or others may access is refused, not used: anyone who can read
it can deploy code. The key itself lives in the metadata database like any other key, so
``shipyard keys revoke`` works on it; the next :func:`ensure_admin_token` then writes a new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from shipyard.config import current_user
from shipyard.keys.errors import TokenFileError
from shipyard.keys.scopes import ADMIN
from shipyard.keys.store import KeyStore

TOKEN_FILE = "admin.token"
_LOCK_FILE = "admin.token.lock"


def token_path(home: Path | str) -> Path:
    """Where the admin token of ``home`` (a ``SHIPYARD_HOME``) lives."""
    return Path(home) / TOKEN_FILE


def read_admin_token(home: Path | str) -> str | None:
    """The admin token in ``home``, or None if there is no token file (or it is empty).

    Raises :class:`TokenFileError` if group or others may access the file, or it cannot be
    read. Does not check the token against the database (the host does).
    """
    path = token_path(home)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TokenFileError(path, f"cannot read the admin token {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise TokenFileError(
                path, f"cannot read the admin token {path}: not a regular file; remove it"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise TokenFileError(
                path,
                f"the admin token {path} may be read by group or others (mode {mode:04o}), so "
                f"anyone on this machine could deploy code: run `chmod 600 {path}` (or delete "
                "the file and restart `shipyard serve` for a new token)",
            )
        with os.fdopen(os.dup(fd), encoding="utf-8") as file:
            token = file.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(path, f"cannot read the admin token {path}: {exc}") from None
    finally:
        os.close(fd)
    return token or None


def ensure_admin_token(home: Path | str, keys: KeyStore | None = None) -> str:
    """The admin token of ``home``, made if needed, and valid in the database of ``keys``.

    Reuses the token in ``home/admin.token`` while it still verifies as an admin key;
    otherwise creates a new admin key and writes the file (mode 0600; ``home`` is created
    with mode 0700 if it does not exist). ``keys`` defaults to a store on the configured
    metadata database. Two processes calling this at once agree on one token (a file lock).
    Raises :class:`TokenFileError` for a token file that group or others may access.
    """
    root = Path(home)
    if not root.exists():
        root.mkdir(parents=True, mode=0o700)
        root.chmod(0o700)  # mkdir's mode is masked by the umask
    if keys is None:
        from shipyard.store.meta import MetaStore

        with MetaStore.open() as meta, KeyStore(meta) as own:
            return ensure_admin_token(root, own)
    with _locked(root / _LOCK_FILE):
        token = read_admin_token(root)
        if token is not None:
            record = keys.verify(token)
            if record is not None and ADMIN in record.scopes:
                return token
        _, token = keys.create("admin token", [ADMIN], created_by=current_user())
        _write_private(token_path(root), token + "\n")
    return token


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600: temp file, fsync, rename, fsync the dir."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


__all__ = ["TOKEN_FILE", "ensure_admin_token", "read_admin_token", "token_path"]
