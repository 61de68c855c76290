"""Feature code written once, computed the same way in the flow that trains and in the
service that serves (see README "Features").

```python
from shipyard.features import FeatureSet, Lookup, feature

@feature
def title_length(facts) -> int:
    return len(facts.get("title") or "")

features = FeatureSet("ranker-features", [title_length])
features.row({"title": "Heat"})          # one request: plain Python, no pandas
features.frame(training_facts)           # many rows: a DataFrame, point-in-time lookups
```

Nothing heavy is imported here: ``row`` never imports pandas; ``frame`` imports pandas and
DuckDB when first called.
"""

from __future__ import annotations

from shipyard.features.definition import Facts, Feature, Lookups, feature
from shipyard.features.errors import (
    FeatureComputeError,
    FeatureDefinitionError,
    FeatureError,
    FeatureSetMismatch,
)
from shipyard.features.lookups import Lookup
from shipyard.features.reader import facts_frame, lookup_frames, read_serving_log
from shipyard.features.servinglog import ServingLog
from shipyard.features.sets import FeatureSet

__all__ = [
    "Facts",
    "Feature",
    "FeatureComputeError",
    "FeatureDefinitionError",
    "FeatureError",
    "FeatureSet",
    "FeatureSetMismatch",
    "Lookup",
    "Lookups",
    "ServingLog",
    "facts_frame",
    "feature",
    "lookup_frames",
    "read_serving_log",
]
