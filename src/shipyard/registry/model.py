"""``Model("ranker@prod")``: one registered model version, loadable anywhere.

>>> model = Model("ranker@prod")            # doctest: +SKIP
>>> model.resolve()                         # doctest: +SKIP
'ranker:3'
>>> scorer = model.load()                   # doctest: +SKIP

Where a ``Model`` finds its record is a seam: by default it reads the metadata database, but a
process may install a resolver (:func:`set_resolver`) that every later ``Model(spec)`` asks
instead. A host's worker installs one that asks the host, so service code never needs (nor
can read) the metadata database; the model is still loaded from the blob store.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

from shipyard.registry.errors import ModelSpecError, RegistryError
from shipyard.registry.names import parse_spec
from shipyard.registry.records import ModelVersion
from shipyard.registry.registry import Registry
from shipyard.registry.signature import Signature

#: a spec as written (``ranker@prod``) -> its record; raises ModelNotFound / ModelSpecError
Resolver = Callable[[str], ModelVersion]

#: set by a host worker: model specs pinned at deploy time -> "name:version"
PINS_ENV = "SHIPYARD_MODEL_PINS"
#: every spec resolved in this process -> "name:version"; a worker reports these when it is
#: ready, so an alias used in ``load()`` is pinned for every later replica and restart
resolved: dict[str, str] = {}
#: the records of those: spec as written -> its ModelVersion (a worker checks the feature set
#: each was trained with against the service's; see shipyard.features.checks)
records: dict[str, ModelVersion] = {}
_resolver: Resolver | None = None
_loader: Registry | None = None
_lock = threading.Lock()


def set_resolver(resolver: Resolver | None) -> None:
    """Make every later ``Model(spec)`` made without ``registry=`` take its record from
    ``resolver(spec)`` instead of the metadata database (None: back to the database). The
    resolver gets the spec as written and applies any pins itself; the model's blob is read
    from the settings' blob store.

    >>> set_resolver(lambda spec: records[spec])     # doctest: +SKIP
    """
    global _resolver, _loader
    with _lock:
        _resolver, _loader = resolver, None


def _resolving() -> tuple[Resolver, Registry] | None:
    """The installed resolver and a registry that only loads (no metadata store), if any."""
    global _loader
    with _lock:
        if _resolver is None:
            return None
        if _loader is None:
            from shipyard.store.blobs import open_blob_store

            _loader = Registry(blobs=open_blob_store())
        return _resolver, _loader


def _model_name(spec: object) -> str | None:
    try:
        return parse_spec(spec).name
    except ModelSpecError:
        return None


def _pinned(spec: str) -> str | None:
    """The version the deployment pinned for ``spec``: the pin of that very spec, else, for
    a bare name in the code (``Model("docs-index")``, the latest), the one version the
    deployment pinned of that model (``--model docs-index:3``), so pinning at deploy needs no
    code that reads the pins itself. Two pins of one model leave a bare name to the latest."""
    try:
        pins = json.loads(os.environ.get(PINS_ENV) or "{}")
    except ValueError:
        return None
    if not isinstance(pins, dict):
        return None
    value = pins.get(spec)
    if isinstance(value, str):
        return value
    name = _model_name(spec)
    if name is None or name != spec.strip():
        return None  # name:3 or name@alias in the code: only its own pin applies
    found = {v for k, v in pins.items() if isinstance(v, str) and _model_name(k) == name}
    return found.pop() if len(found) == 1 else None


class Model:
    """A model version named by ``name`` (the latest), ``name:3`` or ``name@alias``.

    The spec is resolved once, when the Model is made: a later alias move does not change
    what this object loads (``resolve()`` gives the pinned ``name:version``). Raises
    :class:`ModelSpecError` for a malformed spec and :class:`ModelNotFound` (listing what
    exists) when nothing matches.
    """

    def __init__(self, spec: str, *, registry: Registry | None = None) -> None:
        self.spec = spec
        seam = _resolving() if registry is None else None
        if seam is not None:
            resolve, self._registry = seam
            self._info = resolve(spec)
        else:
            self._registry = registry or Registry()
            # in a hosted service, what the deployment pinned wins over where an alias points
            self._info = self._registry.get(_pinned(spec) or spec)
        resolved[spec] = self._info.spec
        records[spec] = self._info

    @property
    def info(self) -> ModelVersion:
        """Everything recorded: name, version, aliases, metrics, tags, lineage, libraries,
        created_at, user, the artifact's blob key (read when the Model was made)."""
        return self._info

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def version(self) -> int:
        return self._info.version

    @property
    def signature(self) -> Signature | None:
        """The model's input columns, recorded at register time, or None.

        >>> rows = Model("iris@prod").signature.validate(rows, field="rows")  # doctest: +SKIP
        """
        return self._info.signature

    def validate(self, rows: Any, *, field: str = "rows") -> list[list[Any]]:
        """``self.signature.validate(rows, field=field)``: the rows as lists in column order,
        or ``shipyard.HTTPError(422)`` naming the field. Raises :class:`RegistryError` when
        the version has no signature (register it with ``signature=...``)."""
        signature = self._info.signature
        if signature is None:
            raise RegistryError(
                f"model {self._info.spec} has no input signature to validate against: "
                "register it with current.register_model(..., signature={'name': 'float', "
                "...}) or a fitted scikit-learn model, or an input_example="
            )
        return signature.validate(rows, field=field)

    def resolve(self) -> str:
        """The pinned ``name:version`` this Model loads (an alias resolved)."""
        return self._info.spec

    def load(self) -> Any:
        """The model object (a fresh copy each call), its classes imported from the producing
        run's code snapshot when they are not importable here. Warns
        (:class:`ModelVersionWarning`) if Python or a library it was registered with differs
        here in major.minor."""
        return self._registry.load(self._info)

    def __repr__(self) -> str:
        return f"Model({self.spec!r} -> {self._info.spec}, {self._info.artifact.type_name})"


__all__ = ["PINS_ENV", "Model", "Resolver", "records", "resolved", "set_resolver"]
