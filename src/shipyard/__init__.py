"""shipyard: from a Python class on a laptop to a hosted, scaled, monitored ML service.

Everything is imported lazily, so ``import shipyard`` costs almost nothing until a name is
used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Files": "shipyard.store.files",
    "FlowSpec": "shipyard.flow.spec",
    "HTTPError": "shipyard.errors",
    "IncludeFile": "shipyard.flow.parameters",
    "JSONType": "shipyard.flow.parameters",
    "Model": "shipyard.registry",
    "Parameter": "shipyard.flow.parameters",
    "Runner": "shipyard.flow.runner",
    "Service": "shipyard.serve",
    "catch": "shipyard.flow.decorators",
    "current": "shipyard.flow.current",
    "endpoint": "shipyard.serve",
    "conda": "shipyard.flow.decorators",
    "conda_base": "shipyard.flow.decorators",
    "environment": "shipyard.flow.decorators",
    "pypi": "shipyard.flow.decorators",
    "pypi_base": "shipyard.flow.decorators",
    "ray_options": "shipyard.flow.decorators",
    "resources": "shipyard.flow.decorators",
    "retry": "shipyard.flow.decorators",
    "step": "shipyard.flow.decorators",
    "timeout": "shipyard.flow.decorators",
    "schedule": "shipyard.schedules.decorators",
    "trigger": "shipyard.schedules.decorators",
    "trigger_on_finish": "shipyard.schedules.decorators",
    "Flow": "shipyard.client",
    "Run": "shipyard.client",
    "Step": "shipyard.client",
    "Task": "shipyard.client",
    "card": "shipyard.cards",
    "connect": "shipyard.remote",
    # what Metaflow users reach for (see "Coming from Metaflow" in the README)
    "NBRunner": "shipyard.flow.nbrun",
    "project": "shipyard.flow.project",
    "namespace": "shipyard.client",
    "get_namespace": "shipyard.client",
    "default_namespace": "shipyard.client",
    "metadata": "shipyard.client",
    "get_metadata": "shipyard.client",
    "default_metadata": "shipyard.client",
}

#: parts used as modules: ``from shipyard import cache`` then ``cache.reader("home-rows")``
_MODULES = {"cache": "shipyard.cache"}

__all__ = sorted([*_EXPORTS, *_MODULES])

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load on first use
    from shipyard import cache as cache
    from shipyard.cards import card as card
    from shipyard.client import Flow as Flow
    from shipyard.client import Run as Run
    from shipyard.client import Step as Step
    from shipyard.client import Task as Task
    from shipyard.client import default_metadata as default_metadata
    from shipyard.client import default_namespace as default_namespace
    from shipyard.client import get_metadata as get_metadata
    from shipyard.client import get_namespace as get_namespace
    from shipyard.client import metadata as metadata
    from shipyard.client import namespace as namespace
    from shipyard.errors import HTTPError as HTTPError
    from shipyard.flow.current import current as current
    from shipyard.flow.decorators import catch as catch
    from shipyard.flow.decorators import conda as conda
    from shipyard.flow.decorators import conda_base as conda_base
    from shipyard.flow.decorators import environment as environment
    from shipyard.flow.decorators import pypi as pypi
    from shipyard.flow.decorators import pypi_base as pypi_base
    from shipyard.flow.decorators import ray_options as ray_options
    from shipyard.flow.decorators import resources as resources
    from shipyard.flow.decorators import retry as retry
    from shipyard.flow.decorators import step as step
    from shipyard.flow.decorators import timeout as timeout
    from shipyard.flow.nbrun import NBRunner as NBRunner
    from shipyard.flow.parameters import IncludeFile as IncludeFile
    from shipyard.flow.parameters import JSONType as JSONType
    from shipyard.flow.parameters import Parameter as Parameter
    from shipyard.flow.project import project as project
    from shipyard.flow.runner import Runner as Runner
    from shipyard.flow.spec import FlowSpec as FlowSpec
    from shipyard.registry import Model as Model
    from shipyard.remote import connect as connect
    from shipyard.schedules.decorators import schedule as schedule
    from shipyard.schedules.decorators import trigger as trigger
    from shipyard.schedules.decorators import trigger_on_finish as trigger_on_finish
    from shipyard.serve import Service as Service
    from shipyard.serve import endpoint as endpoint
    from shipyard.store.files import Files as Files


_lazy_getattr, __dir__ = lazy_exports(__name__, _EXPORTS, [*__all__, "__version__"], _MODULES)

#: Metaflow names shipyard does not have, and what to use instead: ``from shipyard import
#: kubernetes`` in a ported flow then says so, instead of "cannot import name" (``@conda``
#: is imported, and refused by the graph check naming ``@pypi``)
_METAFLOW_ONLY = {
    "kubernetes": "@kubernetes: shipyard runs steps on this machine; ask for cores and "
    "memory with @resources(cpu=..., memory=...)",
    "batch": "@batch: shipyard runs steps on this machine; ask for cores and memory with "
    "@resources(cpu=..., memory=...)",
}


def __getattr__(name: str) -> object:
    if name not in _EXPORTS and name in _METAFLOW_ONLY:
        raise ImportError(f"shipyard has no {_METAFLOW_ONLY[name]}", name=name)
    return _lazy_getattr(name)
