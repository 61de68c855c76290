"""Reading a service's serving log back as a DataFrame.

>>> log = read_serving_log("ranker", since=datetime.now(UTC) - timedelta(days=1))  # doctest: +SKIP
>>> list(log.columns)                                                              # doctest: +SKIP
['request_id', 'ts', 'facts', 'lookups', 'title_length', 'mean_rating', 'prediction']

Columns: ``request_id``, ``ts`` (UTC), ``facts`` (a dict per row), ``lookups`` (a dict of
lookup name -> its fields, or None), one column per logged feature (in the order the first
record gave them), ``prediction``. :func:`facts_frame` turns it into what
``FeatureSet.frame`` takes to recompute the features offline.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.features.errors import FeatureError
from shipyard.features.logstore import open_segments
from shipyard.features.servinglog import FIELDS, VERSION

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["facts_frame", "lookup_frames", "read_serving_log"]

_FIXED = ("request_id", "ts", "facts", "lookups", "prediction")


def read_serving_log(
    service: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    store_url: str | None = None,
    home: str | Path | None = None,
) -> pd.DataFrame:
    """Every logged record of ``service`` with ``since <= ts < until``, oldest first.
    ``store_url``: the blob store (default: the settings'); ``home``: a SHIPYARD_HOME whose
    default store to read (``file://HOME/blobs``)."""
    import msgpack
    import pandas as pd
    import zstandard

    if store_url is None and home is not None:
        store_url = f"file://{Path(home).resolve() / 'blobs'}"
    store = open_segments(store_url)
    low = since.timestamp() if since is not None else None
    high = until.timestamp() if until is not None else None
    records: list[dict[str, Any]] = []
    for segment in store.segments(service):
        if low is not None and segment.last_ms < int(low * 1000):
            continue
        if high is not None and segment.first_ms / 1000 >= high:
            continue
        data = store.read(service, segment.name)
        try:
            raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        except zstandard.ZstdError as exc:
            raise FeatureError(
                f"serving log segment {segment.name} of {service!r} in {store.url} is "
                f"corrupt: {exc}"
            ) from None
        unpacker = msgpack.Unpacker(raw=False, timestamp=3, strict_map_key=False)
        unpacker.feed(raw)
        fields: list[str] = list(FIELDS)
        names: list[str] | None = None
        batched = False
        for item in unpacker:
            if isinstance(item, dict):  # the segment's header
                fields = [str(f) for f in item.get("fields", fields)]
                version = item.get("version", 1)
                if not isinstance(version, int) or version > VERSION:
                    raise FeatureError(
                        f"serving log segment {segment.name} of {service!r} in {store.url} "
                        f"has format version {version!r}; this shipyard reads up to {VERSION}"
                    )
                batched = version >= 2  # arrays of records; version 1: one record a value
                found = item.get("features")  # version 3: a feature vector's names
                names = [str(n) for n in found] if isinstance(found, list) else None
                continue
            for values in item if batched else (item,):
                record = dict(zip(fields, values, strict=False))
                ts = record["ts"]
                if (low is None or ts >= low) and (high is None or ts < high):
                    vector = record.get("features")
                    if isinstance(vector, list):
                        record["features"] = _named(vector, names, segment.name, service)
                    records.append(record)
    records.sort(key=lambda r: r["ts"])
    features = pd.DataFrame([r.get("features") or {} for r in records])
    clash = sorted(set(features.columns) & set(_FIXED))
    if clash:
        raise FeatureError(f"feature names {clash} clash with the serving log's own columns")
    out = pd.DataFrame(
        {
            "request_id": [r.get("request_id") for r in records],
            "ts": pd.to_datetime([r["ts"] for r in records], unit="s", utc=True),
            "facts": [r.get("facts") for r in records],
            "lookups": [r.get("lookups") for r in records],
        }
    )
    for column in features.columns:
        out[column] = features[column].to_numpy()
    out["prediction"] = [r.get("prediction") for r in records]
    return out


def _named(
    vector: list[Any], names: list[str] | None, segment: str, service: str
) -> dict[str, Any]:
    """A logged feature vector (values only) by the names its segment's header gives."""
    if names is None:
        raise FeatureError(
            f"serving log segment {segment} of {service!r} has a feature vector (values only) "
            "but no feature names in its header: log features as a dict, or give "
            "ServingLog(features=<the FeatureSet>) so the names are written"
        )
    if len(vector) != len(names):
        raise FeatureError(
            f"serving log segment {segment} of {service!r}: a record's feature vector has "
            f"{len(vector)} values, but its header names {len(names)} features {names}: log "
            "the vector of the FeatureSet given as ServingLog(features=...)"
        )
    return dict(zip(names, vector, strict=True))


def facts_frame(serving_log: pd.DataFrame) -> pd.DataFrame:
    """The logged facts as columns, with ``ts`` and each lookup's ``<name>.as_of`` (the
    as-of time the service used, when the lookup carried one): what ``FeatureSet.frame``
    takes to recompute the logged features offline."""
    import pandas as pd

    facts = pd.DataFrame([f if isinstance(f, dict) else {} for f in serving_log["facts"]])
    facts.index = serving_log.index
    facts["ts"] = serving_log["ts"]
    names: dict[str, list[Any]] = {}
    for i, found in enumerate(serving_log["lookups"]):
        for name, value in (found or {}).items():
            if isinstance(value, dict) and "as_of" in value:
                names.setdefault(name, [None] * len(serving_log))[i] = value["as_of"]
    for name, values in names.items():
        facts[f"{name}.as_of"] = values
    return facts


def lookup_frames(serving_log: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The logged lookups, one frame of fields per lookup name, aligned with the log's rows
    (a row whose lookup was missing is all-missing, so ``FeatureSet.frame(...,
    lookups=lookup_frames(log))`` gives it the lookup's default, as online): recomputing
    with what the service was given separates code skew from staleness."""
    import pandas as pd

    names: list[str] = []
    for found in serving_log["lookups"]:
        for name in found or {}:
            if name not in names:
                names.append(name)
    frames: dict[str, pd.DataFrame] = {}
    for name in names:
        rows = [
            dict(found[name])
            if isinstance(found, dict) and isinstance(found.get(name), dict)
            else {}
            for found in serving_log["lookups"]
        ]
        frames[name] = pd.DataFrame(rows, index=range(len(rows)))
    return frames
