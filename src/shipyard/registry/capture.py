"""Registering from a step: :func:`capture` in the task, :func:`commit` in the runtime.

``current.register_model(name, obj_or_artifact_name, metrics=..., tags=...)`` calls
:func:`capture` in the task process: it checks everything the user passed (errors surface in
the step, at the user's line), writes the object's blob if needed, and returns a JSON-able
*intent*. The task reports its intents with its result; the runtime calls :func:`commit` in
the same transaction that records the task's success, so a failed or retried attempt
registers nothing and a crash cannot leave a success without its versions (or the reverse).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy.engine import Connection

from shipyard.registry import _db
from shipyard.registry.errors import ModelSpecError, RegistryError
from shipyard.registry.libraries import libraries_for
from shipyard.registry.names import check_name, clean_metrics, clean_tags
from shipyard.registry.signature import infer_signature, with_feature_set
from shipyard.store.blobs import BlobStore, keep_blob
from shipyard.store.files import Files, upload
from shipyard.store.records import ArtifactRecord
from shipyard.store.serialize import ArtifactNotPicklable, encode


def _flow_artifacts(flow: Any) -> tuple[dict[str, Any], Mapping[str, ArtifactRecord]]:
    """(what the step set: name -> value, what it inherited: name -> record)."""
    attrs = getattr(flow, "__dict__", {})
    own = {k: v for k, v in attrs.items() if not k.startswith("_")}
    inherited = attrs.get("_data")
    return own, inherited if isinstance(inherited, Mapping) else {}


def capture(
    name: str,
    obj: Any,
    *,
    flow: Any,
    store: BlobStore,
    metrics: Mapping[str, Any] | None = None,
    tags: Iterable[str] | None = None,
    signature: Any = None,
    input_example: Any = None,
    features: Any = None,
) -> dict[str, Any]:
    """Check a registration and return its intent (called in the task process).

    ``obj`` is the model object, or a ``str`` naming an artifact of the step (one it set or
    inherited; registered with the value it has when the step ends). An object is serialized
    and written now (deduplicated: passing ``self.model`` costs no second blob). Raises
    :class:`ModelSpecError` for a bad name, metric, tag or signature or an unknown artifact
    name, and :class:`RegistryError` for an object that cannot be pickled.

    The input signature is ``signature`` if given, else inferred from the object (a fitted
    scikit-learn model) or from ``input_example`` (see :mod:`shipyard.registry.signature`);
    an inherited artifact named by a string is not loaded for it. ``features``: the
    ``FeatureSet`` the model was trained on, recorded in the signature (its name and version).

    >>> capture("ranker", "model", flow=self, store=store, metrics={"ndcg": 0.4})  # doctest: +SKIP
    {'name': 'ranker', 'artifact': 'model', 'metrics': {'ndcg': 0.4}, 'tags': [], ...}
    """
    check_name(name)
    intent: dict[str, Any] = {
        "name": name,
        "metrics": clean_metrics(metrics),
        "tags": clean_tags(tags),
    }
    value: Any = None
    if isinstance(obj, str):
        own, inherited = _flow_artifacts(flow)
        if obj in own:
            value = own[obj]
            type_name = f"{type(value).__module__}.{type(value).__qualname__}"
        elif obj in inherited:
            type_name = inherited[obj].type_name
        else:
            have = ", ".join(sorted({*own, *inherited})) or "none"
            raise ModelSpecError(
                f"register_model({name!r}, {obj!r}): the step has no artifact {obj!r} (a string "
                f"names an artifact; the step's artifacts: {have}); pass the object itself, "
                f"e.g. register_model({name!r}, self.model)"
            )
        intent["artifact"] = obj
    else:
        try:
            if isinstance(obj, Files):
                upload(store, obj, name=name)
            enc = encode(obj, name=name)
        except ArtifactNotPicklable as exc:
            raise RegistryError(
                f"register_model({name!r}, ...): the {exc.type_name} object cannot be pickled: "
                f"{exc.reason}"
            ) from None
        store.put(enc.key, enc.chunks)  # deduplicated: an artifact's bytes are there already
        record = enc.record(name)
        type_name = record.type_name
        intent["record"] = asdict(record)
        value = obj
    intent["libraries"] = libraries_for(type_name)
    found = infer_signature(value, signature=signature, input_example=input_example)
    if features is not None:
        found = with_feature_set(found, features)
    intent["signature"] = found.to_json() if found is not None else None
    return intent


def check_references(
    intents: Sequence[dict[str, Any]],
    artifacts: Mapping[str, ArtifactRecord],
    store: BlobStore | None = None,
) -> None:
    """Raise :class:`RegistryError` if an intent names an artifact the task did not persist
    (the step deleted it after registering). Call in the task after persisting, so the task
    fails there instead of the runtime's commit; with ``store``, a named artifact small
    enough to live in its row also gets its blob (a model version outlives its run)."""
    for intent in intents:
        ref = intent.get("artifact")
        if ref is None:
            continue
        if ref not in artifacts:
            raise RegistryError(
                f"register_model({intent.get('name')!r}, {ref!r}): the step no longer has an "
                f"artifact {ref!r} when it ends (was it deleted?); keep it, or pass the object"
            )
        if store is not None:
            keep_blob(store, artifacts[ref])


def _resolve(
    intent: dict[str, Any], artifacts: Mapping[str, ArtifactRecord]
) -> tuple[ArtifactRecord, str | None]:
    ref = intent.get("artifact")
    if ref is not None:
        check_references([intent], artifacts)
        return artifacts[ref], ref
    record = ArtifactRecord(**intent["record"])
    # lineage: an object that is also one of the task's artifacts (same bytes) is named
    same = sorted(n for n, a in artifacts.items() if a.key == record.key and a.offset is None)
    return record, same[0] if same else None


def commit(
    conn: Connection,
    intents: Sequence[dict[str, Any]],
    *,
    artifacts: Mapping[str, ArtifactRecord],
    flow_name: str,
    run_id: int,
    step_name: str,
    task_id: int,
    user: str,
) -> list[tuple[str, int]]:
    """Add one version per intent, inside the caller's transaction (the one recording the
    task's success). ``artifacts``: the task's persisted artifacts by name. Returns the
    ``(name, version)`` pairs in order. Raises :class:`RegistryError` for an intent naming an
    artifact not in ``artifacts`` (roll the transaction back)."""
    added: list[tuple[str, int]] = []
    for intent in intents:
        name = check_name(intent["name"])
        record, artifact_name = _resolve(intent, artifacts)
        version = _db.add_version(
            conn,
            name=name,
            record=record,
            artifact_name=artifact_name,
            flow_name=flow_name,
            run_id=run_id,
            step_name=step_name,
            task_id=task_id,
            metrics=clean_metrics(intent.get("metrics")),
            tags=clean_tags(intent.get("tags")),
            libraries=dict(intent.get("libraries") or {}),
            user=user,
            signature=intent.get("signature"),
        )
        added.append((name, version))
    return added


__all__ = ["capture", "check_references", "commit"]
