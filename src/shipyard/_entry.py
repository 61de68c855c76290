"""How a flow file starts the command line: ``python flow.py run`` ends in ``MyFlow()``.

As in Metaflow, the flow file is the program: its last line instantiates the flow, and
``FlowSpec.__init__`` hands over to :func:`flow_file_main`, which runs the flow's CLI
(``run``, ``resume``, ``show``) and exits. This module is the one place below the CLI that
knows about ``sys.argv`` and the CLI (the layers contract in pyproject.toml lists
``shipyard.flow.spec -> shipyard._entry`` as its one exception).

It also owns a start-up trick the flow figures in BENCHMARKS.md depend on: for a ``run``, the
metadata recorder (``flow/recorder.py``) is forked *before* click, the flow file and
SQLAlchemy are imported, from a small process that is cheap to fork, and it imports its own
SQLite writer while the CLI loads. The CLI then hands it to the runtime
(:func:`take_recorder`); one never taken (a bad parameter ends the process first) is stopped
at exit.
"""

from __future__ import annotations

import atexit
import sys
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from shipyard.flow.recorder import Recorder

#: the recorder :func:`fork_recorder` forked, until the runtime takes it
_early: Recorder | None = None


def flow_file_main(flow_cls: type) -> NoReturn:
    """``python flow.py ...``: fork the recorder for a ``run``, then run the flow's CLI."""
    if sys.argv[1:2] == ["run"]:
        fork_recorder()
    from shipyard.cli.flows import flow_main

    flow_main(flow_cls)


def fork_recorder() -> None:
    """Fork the recorder now for the configured database, if it is a SQLite file and none
    is waiting for it yet; :func:`take_recorder` hands it to the run about to start."""
    global _early
    from shipyard.config import settings
    from shipyard.flow.recorder import Recorder
    from shipyard.store.bootstrap import sqlite_file

    url = settings().db_url
    if _early is not None and _early.url != url:  # left by a command that failed in this
        discard_recorder()  # process (one process can run several: CliRunner, notebooks)
    if _early is None and sqlite_file(url) is not None:
        _early = Recorder(url)


def take_recorder() -> Recorder | None:
    """The recorder :func:`fork_recorder` forked (once), or None; pass it to ``Runtime``,
    which stops it if the run writes elsewhere."""
    global _early
    early, _early = _early, None
    return early


def discard_recorder() -> None:
    """Stop the recorder :func:`fork_recorder` forked, if no run took it."""
    early = take_recorder()
    if early is not None:
        early.discard()


atexit.register(discard_recorder)  # a recorder no run took (a bad parameter...) is stopped

__all__ = ["discard_recorder", "flow_file_main", "fork_recorder", "take_recorder"]
