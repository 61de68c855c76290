"""The flow engine: write a flow (``FlowSpec``, ``@step``, ``Parameter``), run it from the
command line or with ``Runner``, and extend it with step decorators (``StepDecorator``).

>>> from shipyard.flow import FlowSpec, step, retry

The same names are on ``shipyard`` itself for flow files. Every name loads on first use, so
importing a part of the engine (the zygote, the recorder) stays as cheap as the part.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard._lazy import lazy_exports

# ``current`` is imported now: the submodule of the same name, once imported, would hide a
# lazily exported one (the module is cheap)
from shipyard.flow.current import current as current

_EXPORTS = {
    "ArtifactError": "shipyard.flow.exceptions",
    "CaughtFailure": "shipyard.flow.task",
    "Current": "shipyard.flow.current",
    "FlowDefinitionError": "shipyard.flow.exceptions",
    "FlowError": "shipyard.flow.exceptions",
    "FlowSpec": "shipyard.flow.spec",
    "GraphError": "shipyard.flow.exceptions",
    "IncludeFile": "shipyard.flow.parameters",
    "InputView": "shipyard.flow.spec",
    "Inputs": "shipyard.flow.spec",
    "JSONType": "shipyard.flow.parameters",
    "Parameter": "shipyard.flow.parameters",
    "ParameterError": "shipyard.flow.exceptions",
    "RecorderFailed": "shipyard.flow.exceptions",
    "RegisterModel": "shipyard.flow.current",
    "ResumeError": "shipyard.flow.exceptions",
    "Runner": "shipyard.flow.runner",
    "StepDecorator": "shipyard.flow.decorators",
    "TaskContext": "shipyard.flow.decorators",
    "TaskOptions": "shipyard.flow.decorators",
    "TransitionError": "shipyard.flow.exceptions",
    "catch": "shipyard.flow.decorators",
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
}

__all__ = sorted([*_EXPORTS, "current"])

if TYPE_CHECKING:  # for type checkers and IDEs; at run time names load on first use
    from shipyard.flow.current import Current as Current
    from shipyard.flow.current import RegisterModel as RegisterModel
    from shipyard.flow.decorators import StepDecorator as StepDecorator
    from shipyard.flow.decorators import TaskContext as TaskContext
    from shipyard.flow.decorators import TaskOptions as TaskOptions
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
    from shipyard.flow.exceptions import ArtifactError as ArtifactError
    from shipyard.flow.exceptions import FlowDefinitionError as FlowDefinitionError
    from shipyard.flow.exceptions import FlowError as FlowError
    from shipyard.flow.exceptions import GraphError as GraphError
    from shipyard.flow.exceptions import ParameterError as ParameterError
    from shipyard.flow.exceptions import RecorderFailed as RecorderFailed
    from shipyard.flow.exceptions import ResumeError as ResumeError
    from shipyard.flow.exceptions import TransitionError as TransitionError
    from shipyard.flow.parameters import IncludeFile as IncludeFile
    from shipyard.flow.parameters import JSONType as JSONType
    from shipyard.flow.parameters import Parameter as Parameter
    from shipyard.flow.runner import Runner as Runner
    from shipyard.flow.spec import FlowSpec as FlowSpec
    from shipyard.flow.spec import Inputs as Inputs
    from shipyard.flow.spec import InputView as InputView
    from shipyard.flow.task import CaughtFailure as CaughtFailure

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
