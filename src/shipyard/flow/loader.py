"""Import a flow file under its own module name (never ``__main__``) and find its flow.

Objects whose classes are defined in the flow file then pickle as ``<module>.<Class>`` and
load later in a notebook, another process or a service (from the run's code snapshot).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from shipyard.flow.exceptions import FlowDefinitionError
from shipyard.flow.graph import Graph


@dataclass
class LoadedFlow:
    module: ModuleType
    module_name: str
    flow_cls: type
    source_file: Path

    def graph(self) -> Graph:
        from shipyard.flow.decorators import init_decorators

        graph = Graph(self.flow_cls)
        init_decorators(graph)
        return graph


def module_name_for(path: Path) -> str:
    name = re.sub(r"\W", "_", path.stem)
    return f"_{name}" if name[:1].isdigit() else name


def import_flow_file(path: str | Path) -> tuple[ModuleType, str]:
    """Import ``path`` as a module named after the file; reuse it if already imported."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise FlowDefinitionError(f"flow file {str(path)!r} does not exist")
    name = module_name_for(file)
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) == str(file):
        return existing, name
    if str(file.parent) not in sys.path:
        sys.path.insert(0, str(file.parent))
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise FlowDefinitionError(f"{file} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module, name


def load_flow(path: str | Path, flow_name: str | None = None) -> LoadedFlow:
    """Import the flow file and pick its FlowSpec subclass (``flow_name`` if several)."""
    from shipyard.flow.spec import FlowSpec

    module, name = import_flow_file(path)
    flows = {
        obj.__name__: obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, FlowSpec)
        and obj is not FlowSpec
        and obj.__module__ == name
    }
    if flow_name is not None:
        if flow_name not in flows:
            raise FlowDefinitionError(
                f"{path} defines no flow named {flow_name!r}; it defines {sorted(flows)}"
            )
        flow_cls = flows[flow_name]
    elif len(flows) == 1:
        flow_cls = next(iter(flows.values()))
    elif not flows:
        raise FlowDefinitionError(
            f"{path} defines no FlowSpec subclass",
            hint="class MyFlow(FlowSpec): with @step methods start ... end",
        )
    else:
        raise FlowDefinitionError(
            f"{path} defines several flows {sorted(flows)}", hint="pick one with --flow NAME"
        )
    return LoadedFlow(module, name, flow_cls, Path(module.__file__ or path).resolve())
