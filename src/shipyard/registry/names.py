"""Model names, aliases, version specs, metrics and tags: checked once, with clear errors.

A model name and an alias both match ``[a-z][a-z0-9_-]{0,62}``: lowercase, so ``Ranker`` and
``ranker`` can never be two models; no ``.``, ``/``, ``:`` or ``@``, so a name is safe in a URL
path, a file name and the ``name:version`` / ``name@alias`` specs. ``latest`` is not an alias
(it always means the newest version).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shipyard.registry.errors import ModelSpecError

_WORD = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LATEST = "latest"
SPEC_FORMS = "'name' (the latest version), 'name:3' or 'name@alias'"
MAX_METRIC_NAME = 128
MAX_TAG = 255


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``name``, ``name:version`` or ``name@alias`` (neither set: the latest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def _word_error(kind: str, value: object) -> str:
    hint = ""
    if isinstance(value, str) and value.lower() != value and _WORD.fullmatch(value.lower()):
        hint = f" (try {value.lower()!r})"
    return (
        f"bad {kind} {value!r}: a {kind} is 1-63 characters, a lowercase letter first, then "
        f"lowercase letters, digits, '_' or '-'{hint}"
    )


def check_name(name: object) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`ModelSpecError`."""
    if not isinstance(name, str) or not _WORD.fullmatch(name):
        raise ModelSpecError(_word_error("model name", name))
    return name


def check_alias(alias: object) -> str:
    """Return ``alias`` if it is a valid alias (not ``latest``), else raise."""
    if not isinstance(alias, str) or not _WORD.fullmatch(alias):
        raise ModelSpecError(_word_error("alias", alias))
    if alias == LATEST:
        raise ModelSpecError(
            "'latest' cannot be an alias: it always means the newest version; pick another "
            "word, e.g. 'prod' or 'canary'"
        )
    return alias


def check_version(version: object) -> int:
    """Return ``version`` as an int if it is a whole number >= 1, else raise."""
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelSpecError(f"bad model version {version!r}: versions are whole numbers from 1")
    return version


def parse_spec(spec: object) -> ModelSpec:
    """Parse ``name``, ``name:3``, ``name@prod`` (``name@latest`` / ``name:latest`` = ``name``).

    >>> parse_spec("ranker@prod")
    ModelSpec(name='ranker', version=None, alias='prod')
    """
    if not isinstance(spec, str):
        raise ModelSpecError(f"a model spec is a string, {SPEC_FORMS}; got {spec!r}")
    text = spec.strip()
    name, sep_v, version = text.partition(":")
    if sep_v:
        if "@" in version:
            raise ModelSpecError(f"bad model spec {spec!r}: use {SPEC_FORMS}, not both : and @")
        check_name(name)
        if version == LATEST:
            return ModelSpec(name)
        try:
            return ModelSpec(name, version=check_version(version))
        except ModelSpecError:
            raise ModelSpecError(
                f"bad model spec {spec!r}: version {version!r} is not a whole number >= 1; "
                f"use {SPEC_FORMS}"
            ) from None
    name, sep_a, alias = text.partition("@")
    if sep_a:
        check_name(name)
        if alias == LATEST:
            return ModelSpec(name)
        return ModelSpec(name, alias=check_alias(alias))
    try:
        return ModelSpec(check_name(name))
    except ModelSpecError as exc:
        raise ModelSpecError(f"bad model spec {spec!r}: {exc}; use {SPEC_FORMS}") from None


def clean_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """Metric name -> finite float (numpy scalars too); raise on anything else."""
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise ModelSpecError(
            f"metrics must be a dict of name -> number, e.g. {{'auc': 0.91}}; got {metrics!r}"
        )
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_METRIC_NAME:
            raise ModelSpecError(
                f"bad metric name {key!r}: a non-empty string of at most {MAX_METRIC_NAME} "
                "characters"
            )
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ModelSpecError(
                f"metric {key!r} = {value!r} ({type(value).__name__}) is not a number; "
                "metrics are ints or floats (use tags for text)"
            )
        number = float(value)
        if not math.isfinite(number):
            raise ModelSpecError(f"metric {key!r} = {value!r} is not finite; record a real number")
        clean[key] = number
    return clean


def clean_tags(tags: Iterable[str] | None) -> list[str]:
    """Tags as a list without duplicates, in the order given; raise on non-strings."""
    if tags is None:
        return []
    if isinstance(tags, str):
        raise ModelSpecError(f"tags must be a list of strings, e.g. [{tags!r}]; got the string")
    clean: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_TAG:
            raise ModelSpecError(
                f"bad tag {tag!r}: tags are non-empty strings of at most {MAX_TAG} characters"
            )
        if tag not in clean:
            clean.append(tag)
    return clean


__all__ = [
    "LATEST",
    "ModelSpec",
    "check_alias",
    "check_name",
    "check_version",
    "clean_metrics",
    "clean_tags",
    "parse_spec",
]
