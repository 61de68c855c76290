"""Namespaces and the metadata in use, as in Metaflow's client.

A namespace is a run tag, or ``user:<name>`` for the runs a user started: ``Flow(...).runs()``,
``latest_run``, ``latest_successful_run``, ``list_runs()`` and ``Run("Flow/12")`` only see the
runs in the current namespace. It starts as :func:`default_namespace` (``user:<you>``, where
you are ``SHIPYARD_USER`` or your login name); ``namespace(None)`` sees every run;
``namespace("project_branch:prod")`` the production runs of ``@project`` flows. Only runs are
namespaced: models and deployments are not. The ``shipyard`` command line and the
UI see every run.

>>> namespace("project:movies")                  # doctest: +SKIP
>>> get_metadata()                               # doctest: +SKIP
'local@/home/me/.shipyard'
"""

from __future__ import annotations

import os
from pathlib import Path

from shipyard.config import current_user, settings

#: False: the default, ``user:<you>``, resolved on each use (it follows SHIPYARD_USER)
_current: str | None | bool = False
#: SHIPYARD_HOME before the first metadata() call (default_metadata() puts it back)
_home_before: str | None | bool = False


def namespace(ns: str | None) -> str | None:
    """See only the runs in namespace ``ns`` (a tag such as ``user:ana`` or
    ``project_branch:prod``), or every run with None. Returns the namespace now in use."""
    global _current
    if ns is not None and (not isinstance(ns, str) or not ns.strip()):
        raise ValueError(
            f"namespace {ns!r}: give a tag such as 'user:ana' or 'project:movies', "
            "or None for every run"
        )
    _current = ns
    return get_namespace()


def get_namespace() -> str | None:
    """The namespace in use (None: every run)."""
    if _current is False:
        return f"user:{current_user()}"
    return _current if isinstance(_current, str) else None


def default_namespace() -> str:
    """Go back to the default namespace, ``user:<you>``, and return it."""
    global _current
    _current = False
    return f"user:{current_user()}"


def namespace_filter() -> tuple[str | None, str | None]:
    """(user, tag) that the namespace in use asks of a run: ``user:NAME`` matches the runs
    NAME started, any other namespace the runs having that tag; (None, None): every run."""
    ns = get_namespace()
    if ns is None:
        return None, None
    if ns.startswith("user:"):
        return ns[len("user:") :], None
    return None, ns


def in_namespace(user: str, tags: tuple[str, ...] | frozenset[str]) -> bool:
    """Whether a run by ``user`` with ``tags`` is in the namespace in use."""
    want_user, want_tag = namespace_filter()
    if want_user is not None:
        return user == want_user or f"user:{want_user}" in tags
    return want_tag is None or want_tag in tags


def metadata(spec: str) -> str:
    """Read runs from another home: ``metadata("local@/path/to/home")`` or
    ``metadata("/path/to/home")`` (it sets ``SHIPYARD_HOME`` for this process). Returns
    :func:`get_metadata`. A shipyard server is reached with ``shipyard.connect(url)``."""
    global _home_before
    kind, _, where = spec.partition("@") if "@" in spec else ("local", "", spec)
    if kind != "local" or not where:
        raise ValueError(
            f"metadata {spec!r}: give a shipyard home, 'local@/path/to/home' or a path; "
            "for a shipyard server use shipyard.connect('http://host:8000')"
        )
    path = Path(where).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise ValueError(f"metadata {spec!r}: {path} is a file, not a shipyard home directory")
    if _home_before is False:
        _home_before = os.environ.get("SHIPYARD_HOME")
    os.environ["SHIPYARD_HOME"] = str(path)
    return get_metadata()


def get_metadata() -> str:
    """Where runs are read from: ``local@<home>`` when the metadata is the home's SQLite file,
    else the database URL (without its password)."""
    conf = settings()
    local = f"sqlite:///{conf.home / 'meta.db'}"
    if conf.db_url == local:
        return f"local@{conf.home}"
    from sqlalchemy.engine import make_url

    url = make_url(conf.db_url)
    return f"{url.get_backend_name()}@{url.render_as_string(hide_password=True)}"


def default_metadata() -> str:
    """Go back to the home this process started with; returns :func:`get_metadata`."""
    global _home_before
    if _home_before is not False:
        if _home_before is None:
            os.environ.pop("SHIPYARD_HOME", None)
        else:
            os.environ["SHIPYARD_HOME"] = str(_home_before)
        _home_before = False
    return get_metadata()


__all__ = [
    "default_metadata",
    "default_namespace",
    "get_metadata",
    "get_namespace",
    "in_namespace",
    "metadata",
    "namespace",
    "namespace_filter",
]
