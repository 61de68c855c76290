"""The web UI: runs (and what triggered each), DAGs, tasks, logs, artifacts, schedules
(next fire times, the history of fire times with their outcomes), models, deployments (with
last-hour traffic charts), gateway routes and usage, and cache namespaces in a browser.

Server-rendered (Starlette + Jinja2) with a little CSS and JavaScript of our own; nothing is
fetched from anywhere else. ``shipyard serve`` mounts :func:`make_ui` at ``/ui`` in the host
(:mod:`shipyard._app`), which it reads through :class:`LiveHost`; ``shipyard ui`` serves
:func:`standalone` alone, read-only. Access: open to loopback clients while no
``ui`` key exists, otherwise sign in with a key (see :mod:`shipyard.ui.auth`). Read-only,
except that inside the host a key with scope ``admin`` may move aliases and roll back
deployments, through the admin API, and pause and resume schedules (see
:mod:`shipyard.ui.actions`, which documents the cross-site request forgery defences).
"""

from __future__ import annotations

from shipyard.ui.app import make_ui, standalone
from shipyard.ui.context import LiveHost

__all__ = ["LiveHost", "make_ui", "standalone"]
