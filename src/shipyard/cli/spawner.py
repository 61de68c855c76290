"""``python -m shipyard.cli.spawner``: the scheduler's spawner process (see
:mod:`shipyard.schedules.spawner`), with the ``shipyard`` command line its runs start from
(imported here, above the schedules layer)."""

from __future__ import annotations

import sys

from shipyard.cli.main import main as shipyard_main
from shipyard.schedules import spawner


def run_command(argv: list[str]) -> int:
    """``shipyard ARGV...`` in this process; returns its exit code."""
    try:
        shipyard_main.main(args=argv, prog_name="shipyard", standalone_mode=True)
    except SystemExit as done:
        code = done.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr, flush=True)
        return 1
    return 0


__all__ = ["run_command"]

if __name__ == "__main__":
    sys.exit(spawner.main(run_command))
