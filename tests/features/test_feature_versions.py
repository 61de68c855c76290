"""A FeatureSet's version: what the code means, not how it is written."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from shipyard.features import FeatureSet, Lookup
from shipyard.features.versioning import _library_version

HELPERS = """
SCALE = {scale}

def _clean(text):
    return (text or "").strip(){norm}

def scaled(value):
    return value * SCALE
"""

FEATURES = """
import math
import helpers_{tag} as helpers
from helpers_{tag} import scaled
from shipyard.features import FeatureSet, feature

OFFSET = {offset}

@feature
def length(facts) -> int:
    {comment}
    return len(helpers._clean(facts.get("title"))){spacing}

@feature
def rating(facts) -> float:
    \"\"\"{doc}\"\"\"
    return math.log1p(scaled(facts["rating"])) + OFFSET

SET = FeatureSet("t", [length, rating])
"""

BASE = {
    "scale": "2.0",
    "norm": "",
    "offset": "1",
    "comment": "# the title's length",
    "spacing": "",
    "doc": "the log of the scaled rating",
}


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _version(tmp_path: Path, tag: str, **change: str) -> str:
    values = {**BASE, **change}
    folder = tmp_path / tag
    folder.mkdir()
    helpers = folder / f"helpers_{tag}.py"
    helpers.write_text(HELPERS.format(**values))
    _load(helpers, f"helpers_{tag}")
    module = folder / f"features_{tag}.py"
    module.write_text(textwrap.dedent(FEATURES.format(tag=tag, **values)))
    try:
        found = _load(module, f"features_{tag}").SET
        assert isinstance(found, FeatureSet)
        return found.version
    finally:
        sys.modules.pop(f"helpers_{tag}", None)
        sys.modules.pop(f"features_{tag}", None)


def test_comments_formatting_and_docstrings_do_not_change_the_version(tmp_path: Path) -> None:
    base = _version(tmp_path, "a")
    assert _version(tmp_path, "b") == base  # the same code in another module: same version
    assert _version(tmp_path, "c", comment="# a different comment") == base
    assert _version(tmp_path, "d", spacing="   # trailing", comment="") == base
    assert _version(tmp_path, "e", doc="reworded docstring") == base
    assert _version(tmp_path, "f", scale="2.0  # same value") == base


@pytest.mark.parametrize(
    "change",
    [
        {"scale": "2.5"},  # a constant of a helper module, read by a helper
        {"norm": ".lower()"},  # a helper's code, read through a module attribute
        {"offset": "2"},  # a constant of the features' own module
    ],
    ids=["helper-constant", "helper-function", "own-constant"],
)
def test_a_changed_helper_or_constant_changes_the_version(
    tmp_path: Path, change: dict[str, str]
) -> None:
    assert _version(tmp_path, "base") != _version(tmp_path, "changed", **change)


def test_a_library_function_is_its_name_and_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.features import versioning

    base = _version(tmp_path, "lib1")
    # math's "version" is the interpreter's: pretend another Python
    versioning._library_version.cache_clear()
    monkeypatch.setattr(versioning.sys, "version_info", (3, 99, 0))
    try:
        assert _version(tmp_path, "lib2") != base
    finally:
        monkeypatch.undo()
        versioning._library_version.cache_clear()
    assert _version(tmp_path, "lib3") == base
    assert _library_version("pandas").startswith("pandas==")


def test_lookups_and_order_are_part_of_the_version(tmp_path: Path) -> None:
    from datetime import timedelta

    from shipyard.features import feature

    @feature
    def one(facts: dict[str, int]) -> int:
        return facts["a"]

    @feature
    def two(facts: dict[str, int]) -> int:
        return facts["b"]

    base = FeatureSet("s", [one, two]).version
    assert FeatureSet("s", [two, one]).version != base
    assert FeatureSet("other-name", [one, two]).version == base
    with_lookup = FeatureSet("s", [one, two], lookups={"p": Lookup("k", timedelta(hours=1))})
    staler = FeatureSet("s", [one, two], lookups={"p": Lookup("k", timedelta(hours=2))})
    assert len({base, with_lookup.version, staler.version}) == 3
