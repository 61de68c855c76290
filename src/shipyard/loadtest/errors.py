"""What goes wrong before or around a load test (never the target's answers: those are
counted, not raised).

::

    LoadtestError
    ├── TargetError      a target that is neither SERVICE/ENDPOINT nor an http(s) URL
    ├── BodyError        a --json, --body-file or --bodies line that is not what it should be
    └── SLOError         an --slo that does not parse
"""

from __future__ import annotations


class LoadtestError(Exception):
    """The root of the load tester's errors."""


class TargetError(LoadtestError):
    """A target that cannot be load-tested."""


class BodyError(LoadtestError):
    """A request body (or a line of a bodies file) that is not valid."""


class SLOError(LoadtestError):
    """An ``--slo`` that does not parse."""


__all__ = ["BodyError", "LoadtestError", "SLOError", "TargetError"]
