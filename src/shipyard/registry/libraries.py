"""The library versions a model was trained with, and the warning when it loads elsewhere.

Recorded at registration (in the task process): Python's version, the distribution that
provides the top-level package of the model's class (``sklearn`` -> ``scikit-learn``), and
numpy, pandas, scipy and torch when the process has imported them. Versions come from
``importlib.metadata``, so nothing is imported to find them. Loading under a different
major.minor of any of them warns (:class:`ModelVersionWarning`): pickles of one scikit-learn
minor release often load under another and then predict subtly differently.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import re
import sys
import warnings

from shipyard.registry.errors import ModelVersionWarning

#: imported-module names whose versions are recorded whenever the process has imported them
WATCHED = ("numpy", "pandas", "scipy", "torch")
PYTHON = "python"
_MAJOR_MINOR = re.compile(r"(\d+)\.(\d+)")


@functools.cache
def _distributions() -> dict[str, list[str]]:
    # scans every installed distribution once (tens of ms): only for names that are not
    # also their distribution's name, like sklearn
    return dict(importlib.metadata.packages_distributions())


def distribution_version(top_level: str) -> tuple[str, str] | None:
    """``(distribution name, version)`` providing the importable ``top_level``, or None."""
    try:
        return top_level, importlib.metadata.version(top_level)
    except importlib.metadata.PackageNotFoundError:
        pass
    for dist in _distributions().get(top_level, []):
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def libraries_for(type_name: str) -> dict[str, str]:
    """What to record for an object of type ``type_name`` (e.g. ``sklearn.svm._classes.SVC``).

    Modules that are not installed distributions (the standard library, the flow file, a
    local package) are left out: their code travels with the run's code snapshot.
    """
    found = {PYTHON: platform.python_version()}
    top = type_name.partition(".")[0]
    candidates = [top] if top and top not in sys.stdlib_module_names else []
    candidates += [name for name in WATCHED if name in sys.modules and name not in candidates]
    for name in candidates:
        dist = distribution_version(name)
        if dist is not None:
            found[dist[0]] = dist[1]
    return found


def _major_minor(version: str) -> tuple[int, int] | None:
    match = _MAJOR_MINOR.match(version)
    return (int(match[1]), int(match[2])) if match else None


def mismatches(recorded: dict[str, str]) -> list[str]:
    """One sentence per library whose major.minor differs here (or that is missing here)."""
    problems: list[str] = []
    for library, then in sorted(recorded.items()):
        now = platform.python_version() if library == PYTHON else _installed(library)
        if now is None:
            problems.append(f"{library} {then} (not installed here)")
            continue
        old, new = _major_minor(then), _major_minor(now)
        if (old != new) if old and new else then != now:
            problems.append(f"{library} {then} (here: {now})")
    return problems


def warn_mismatches(spec: str, recorded: dict[str, str], *, stacklevel: int = 3) -> list[str]:
    """Warn (:class:`ModelVersionWarning`) if ``recorded`` differs from what is installed."""
    problems = mismatches(recorded)
    if problems:
        warnings.warn(
            f"model {spec} was registered with {', '.join(problems)}: a different major.minor "
            "version may fail to load or predict differently; install the recorded versions "
            "(or register a model trained with these)",
            ModelVersionWarning,
            stacklevel=stacklevel,
        )
    return problems


__all__ = [
    "PYTHON",
    "WATCHED",
    "distribution_version",
    "libraries_for",
    "mismatches",
    "warn_mismatches",
]
