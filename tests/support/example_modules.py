"""An example's own modules for a test module: examples import their siblings by bare name
(``from report import card``), and several examples have a ``service.py`` or a ``flow.py``, so
a test module puts its example first on ``sys.path`` while it runs and takes it away after."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType


def _forget(example: Path, *, own: bool) -> None:
    """Drop from ``sys.modules`` the modules named like a file of ``example``: those loaded
    from elsewhere (``own=False``: another example's ``service``) or from it (``own=True``)."""
    names = {path.stem for path in example.glob("*.py")}
    for name, module in list(sys.modules.items()):
        path = str(getattr(module, "__file__", "") or "")
        if path.startswith(str(example)):
            if own:
                del sys.modules[name]
        elif name in names and not own:
            del sys.modules[name]


@contextmanager
def example_modules(example: Path, *names: str) -> Iterator[dict[str, ModuleType]]:
    """Import ``names`` from ``example`` (a folder of examples/), fresh; on exit, forget every
    module loaded from it and take it off ``sys.path``."""
    _forget(example, own=False)
    sys.path.insert(0, str(example))
    try:
        yield {name: importlib.import_module(name) for name in names}
    finally:
        _forget(example, own=True)
        while str(example) in sys.path:
            sys.path.remove(str(example))
