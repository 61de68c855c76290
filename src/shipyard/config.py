"""Settings: one typed reader, resolved lazily.

Order, highest first: a command-line flag (passed in by the CLI as an override) >
the environment (``SHIPYARD_*``) > ``$SHIPYARD_HOME/config.yaml`` > the default.

Flow ``Parameter``s never come from here: only the command line or ``Runner`` set them.
"""

from __future__ import annotations

import getpass
import logging
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

_ENV = {
    "db_url": "SHIPYARD_DB_URL",
    "store_url": "SHIPYARD_STORE_URL",
    "cache_url": "SHIPYARD_CACHE_URL",
    "url": "SHIPYARD_URL",
    "key": "SHIPYARD_KEY",
}


class ConfigError(Exception):
    """A setting could not be read (bad config.yaml, bad value)."""


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`settings`, never by hand in library code."""

    home: Path
    db_url: str
    store_url: str
    cache_url: str
    url: str = "http://127.0.0.1:8000"
    key: str | None = None
    heartbeat_seconds: float = 5.0
    #: further names clients may use in the Host header (e.g. a DNS name in front of the
    #: host): ``allowed_hosts`` in config.yaml, a list
    allowed_hosts: tuple[str, ...] = ()
    #: where flow tasks run: ``local`` (forked processes) or ``ray``
    #: (``SHIPYARD_EXECUTOR``, ``executor`` in config.yaml, ``--executor``)
    executor: str = "local"
    #: the Ray cluster flows run on, ``HOST:PORT`` (``SHIPYARD_RAY_ADDRESS``,
    #: ``ray_address`` in config.yaml, ``--ray-address``); None: a local Ray per run
    ray_address: str | None = None
    #: scheduled runs going at once on this database's scheduler; the rest queue
    #: (``SHIPYARD_MAX_SCHEDULED_RUNS``, ``max_scheduled_runs`` in config.yaml,
    #: ``serve --max-scheduled-runs`` / ``scheduler --max-running``)
    max_scheduled_runs: int = 16
    extra: dict[str, Any] = field(default_factory=dict)

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with the non-None ``overrides`` applied (command-line flags)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def home() -> Path:
    """``SHIPYARD_HOME`` (default ``~/.shipyard``), created on first use with mode 0700.

    It holds the metadata database, the admin token, the cache signing key, blobs and logs,
    so nobody but its owner may look inside: an existing home that group or others may
    access is tightened (see :func:`keep_private`)."""
    path = Path(os.environ.get("SHIPYARD_HOME") or Path.home() / ".shipyard").expanduser()
    try:
        # the mode is set by mkdir itself (the umask can only narrow it): no moment at which
        # a new home is open to others
        path.mkdir(mode=0o700)
    except FileExistsError:
        keep_private(path, "SHIPYARD_HOME", spare_user_home=True)
    except FileNotFoundError:  # its parent does not exist yet: parents get the usual modes
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
    return path.resolve()


_log = logging.getLogger("shipyard")
_warned: set[str] = set()


def keep_private(
    path: Path, what: str, *, uid: int | None = None, spare_user_home: bool = False
) -> None:
    """Take group's and others' permissions away from ``path`` (``what``: "the metadata
    database", ...), if they have any. When ``uid`` (default: this process's effective user)
    owns it, it is tightened, with a warning saying so; otherwise (someone else's, or the
    user's own home directory with ``spare_user_home``) a warning names the ``chmod`` that
    fixes it. A missing ``path`` is left alone. Each warning is given once per process.

    Tightened rather than only warned about: what shipyard keeps there is its own and meant
    for nobody else, and a warning alone would leave an existing install open until someone
    read it."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(info.st_mode)
    if not mode & 0o077:
        return
    private = mode & ~0o077
    ours = info.st_uid == (os.geteuid() if uid is None else uid)
    user_home = Path(os.path.expanduser("~")).resolve()
    if ours and not (spare_user_home and Path(path).resolve() == user_home):
        try:
            os.chmod(path, private)
        except OSError:  # a read-only file system: say so below
            pass
        else:
            _warn_once(
                path,
                f"{what} {path} was open to group or others (mode {mode:04o}); shipyard made "
                f"it {private:04o}, since it may hold secrets (keys, deploys' --env values)",
            )
            return
    _warn_once(
        path,
        f"{what} {path} is open to group or others (mode {mode:04o}) and may hold secrets "
        f"(keys, deploys' --env values): run `chmod go-rwx {path}` as its owner",
    )


def _warn_once(path: Path, message: str) -> None:
    if str(path) not in _warned:
        _warned.add(str(path))
        _log.warning("%s", message)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def settings(**overrides: Any) -> Settings:
    """Resolve the settings now: ``overrides`` (flags) > environment > config.yaml > default."""
    root = home()
    file_values = _read_yaml(root / "config.yaml")
    defaults: dict[str, Any] = {
        "db_url": f"sqlite:///{root / 'meta.db'}",
        "store_url": f"file://{root / 'blobs'}",
        "cache_url": f"lmdb://{root / 'cache'}",
        "url": "http://127.0.0.1:8000",
        "key": None,
        "heartbeat_seconds": 5.0,
        "executor": "local",
        "ray_address": None,
        "max_scheduled_runs": 16,
    }
    values: dict[str, Any] = {}
    for name, default in defaults.items():
        env = os.environ.get(_ENV.get(name, "SHIPYARD_" + name.upper()))
        if overrides.get(name) is not None:
            values[name] = overrides[name]
        elif env:
            values[name] = env
        elif name in file_values:
            values[name] = file_values[name]
        else:
            values[name] = default
    try:
        values["heartbeat_seconds"] = float(values["heartbeat_seconds"])
    except (TypeError, ValueError):
        raise ConfigError(
            f"heartbeat_seconds must be a number, got {values['heartbeat_seconds']!r}"
        ) from None
    where = "--executor, SHIPYARD_EXECUTOR or executor in " + str(root / "config.yaml")
    if values["executor"] not in ("local", "ray"):
        raise ConfigError(f"{where}: expected local or ray, got {values['executor']!r}")
    cap = values["max_scheduled_runs"]
    try:
        values["max_scheduled_runs"] = int(cap)
        if isinstance(cap, bool) or isinstance(cap, float) or values["max_scheduled_runs"] < 1:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(
            "--max-scheduled-runs, SHIPYARD_MAX_SCHEDULED_RUNS or max_scheduled_runs in "
            f"{root / 'config.yaml'}: expected a whole number >= 1, got {cap!r}"
        ) from None
    if values["ray_address"] is not None:
        values["ray_address"] = str(values["ray_address"]) or None
    allowed_hosts = _allowed_hosts(file_values.get("allowed_hosts"), root / "config.yaml")
    extra = {k: v for k, v in file_values.items() if k not in defaults and k != "allowed_hosts"}
    return Settings(home=root, allowed_hosts=allowed_hosts, extra=extra, **values)


def _allowed_hosts(value: Any, path: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"{path}: allowed_hosts must be a list of host names, got {value!r} "
            "(e.g. allowed_hosts: [shipyard.example.com])"
        )
    return tuple(value)


def current_user() -> str:
    """Who is acting, as recorded on runs, model versions, keys and deploys: ``SHIPYARD_USER``,
    else the login name, else ``"unknown"`` (a container may have no login name)."""
    try:
        return os.environ.get("SHIPYARD_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
