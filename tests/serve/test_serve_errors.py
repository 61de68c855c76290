"""One exception root for hosting, its tree drawn where it is defined."""

from __future__ import annotations

import pytest

from shipyard.serve import errors
from shipyard.serve.admin import AdminError
from shipyard.serve.batching import BatchRetriesExhausted, BatchSizeMismatch
from shipyard.serve.dispatch import default_service_name
from shipyard.serve.lifespans import LifespanFailed
from shipyard.serve.protocol import ProtocolError
from shipyard.serve.replica import LoadFailed, ReplicaGone
from shipyard.serve.schemas import EndpointError
from shipyard.serve.service import ServiceDefinitionError
from shipyard.serve.testing import WorkerExited

RAISED = [
    AdminError,
    BatchRetriesExhausted,
    BatchSizeMismatch,
    EndpointError,
    LifespanFailed,
    LoadFailed,
    ProtocolError,
    ReplicaGone,
    ServiceDefinitionError,
    WorkerExited,
]


@pytest.mark.parametrize("kind", RAISED, ids=lambda k: k.__name__)
def test_every_hosting_error_is_a_serve_error_in_the_drawn_tree(kind: type) -> None:
    assert issubclass(kind, errors.ServeError)
    assert f"── {kind.__name__} " in (errors.__doc__ or ""), f"{kind.__name__} is not drawn"
    assert kind.__doc__, f"{kind.__name__} has no docstring"


def test_a_default_service_name_follows_the_name_rule() -> None:
    class RankerService:
        pass

    class Ui:  # a reserved name: the host's own path
        pass

    assert default_service_name(RankerService) == "ranker-service"
    assert default_service_name(Ui) == "service"
