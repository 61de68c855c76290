"""The UI's exceptions: one root, the tree drawn in shipyard.ui.context."""

from __future__ import annotations

import pytest

from shipyard.ui import context
from shipyard.ui.actions import ActionError
from shipyard.ui.cache import CacheUnavailable
from shipyard.ui.context import PageError, PageNotFound, UIError
from shipyard.ui.logs import LogOffsetError


@pytest.mark.parametrize(
    "kind", [PageError, PageNotFound, CacheUnavailable, ActionError, LogOffsetError]
)
def test_every_ui_error_is_a_ui_error_in_the_drawn_tree(kind: type) -> None:
    assert issubclass(kind, UIError)
    assert f"── {kind.__name__} " in (context.__doc__ or ""), f"{kind.__name__} is not drawn"


def test_a_log_offset_error_is_still_a_value_error() -> None:
    assert issubclass(LogOffsetError, ValueError)
