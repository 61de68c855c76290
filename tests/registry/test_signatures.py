"""Input signatures: inferred at register time (scikit-learn, explicit, an input example),
stored with the version (SQLite and PostgreSQL) and read back after a reopen, shown by
``models show`` and the UI, and checked in one line with a 422 naming the field."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from starlette.testclient import TestClient

from shipyard import HTTPError
from shipyard.cli.main import main
from shipyard.flow.artifacts import ArtifactLoader
from shipyard.keys import Guard, KeyStore
from shipyard.registry import (
    Model,
    ModelSpecError,
    Registry,
    RegistryError,
    Signature,
    capture,
    commit,
    infer_signature,
)
from shipyard.serve.model_channel import record_from_json, record_to_json
from shipyard.store import context as _stores
from shipyard.store.meta import MetaStore
from shipyard.ui import standalone
from support.fakes import FakeRuns

if TYPE_CHECKING:
    from conftest import Env

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
EXPECTED_4 = "expected 4 features (sepal_length, sepal_width, petal_length, petal_width)"


def _iris_frame() -> tuple[pd.DataFrame, list[int]]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(12, 4)), columns=IRIS)
    return frame, [0, 1, 2] * 4


def _fitted(*, named: bool) -> LogisticRegression:
    frame, y = _iris_frame()
    return LogisticRegression().fit(frame if named else frame.to_numpy(), y)


class StepState:
    """Stands in for a FlowSpec instance in the middle of a step (see test_registry.py)."""


def _register(meta: MetaStore, blobs: Any, name: str, model: Any, **kw: Any) -> int:
    """``current.register_model(name, model, **kw)`` in a task that succeeds."""
    run_id = meta.create_run("IrisFlow", user="ann", params={}, tags=[], graph={}, code_key=None)
    task_id = meta.create_task(run_id, "end", foreach_stack=[], input_task_ids=[])
    state = StepState()
    state.__dict__.update(_data=ArtifactLoader(blobs, {}))
    intent = capture(name, model, flow=state, store=blobs, **kw)
    with meta.writer.begin() as conn:
        [(_, version)] = commit(
            conn, [intent], artifacts={}, flow_name="IrisFlow", run_id=run_id,
            step_name="end", task_id=task_id, user="ann",
        )  # fmt: skip
    return version


# -- inference --------------------------------------------------------------------------------


def test_a_model_fitted_on_a_dataframe_records_its_feature_names(env: Env) -> None:
    _register(env.meta, env.blobs, "iris", _fitted(named=True))
    signature = env.registry.get("iris").signature
    assert signature is not None
    assert signature.names == tuple(IRIS)
    assert [c.dtype for c in signature.columns] == ["float"] * 4
    assert (signature.named, signature.source) == (True, "sklearn")


def test_a_model_fitted_on_an_array_records_unnamed_columns(env: Env) -> None:
    _register(env.meta, env.blobs, "iris", _fitted(named=False))
    signature = env.registry.get("iris").signature
    assert signature is not None
    assert signature.names == ("f0", "f1", "f2", "f3") and not signature.named


def test_an_explicit_signature_wins_and_a_bad_one_fails_in_the_step(env: Env) -> None:
    _register(env.meta, env.blobs, "iris", _fitted(named=True), signature={"x": "int", "y": str})
    signature = env.registry.get("iris").signature
    assert signature is not None and str(signature) == "x: int, y: str"
    with pytest.raises(ModelSpecError, match=r"unknown dtype 'complex128' for column 'x'"):
        _register(env.meta, env.blobs, "iris", {"w": 1}, signature={"x": "complex128"})
    assert env.registry.get("iris").version == 1  # nothing registered


def test_an_object_that_says_nothing_has_no_signature(env: Env) -> None:
    _register(env.meta, env.blobs, "plain", {"w": 1})
    version = env.registry.get("plain")
    assert version.signature is None and version.to_json()["signature"] is None
    with pytest.raises(RegistryError, match="plain:1 has no input signature"):
        Model("plain", registry=env.registry).validate([[1.0]])


def test_explicit_forms_dataframe_dtypes_names_and_shapes() -> None:
    frame = pd.DataFrame({"age": [31, 40], "income": [1.5, 2.0], "city": ["a", "b"]})
    assert str(Signature.of(frame)) == "age: int, income: float, city: str"
    # pandas 2 keeps text in `object` columns: the frame's values show they are strings,
    # its .dtypes alone cannot, so a text column given that way is `any`
    assert str(Signature.of(frame.dtypes)) == "age: int, income: float, city: any"
    mixed = pd.DataFrame({"city": ["a", None, 3]})
    assert str(Signature.of(mixed)) == "city: any"
    names = Signature.of(["a", "b"])
    assert str(names) == "a: any, b: any"
    embedded = Signature.of({"text": "str", "vector": ("float", (3,))})
    assert str(embedded) == "text: str, vector: float[3]"
    assert Signature.from_json(embedded.to_json()) == embedded
    with pytest.raises(ModelSpecError, match="is not a signature"):
        Signature.of(42)


def test_pipelines_types_come_from_their_first_step() -> None:
    frame, y = _iris_frame()
    numeric = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, y)
    sig = infer_signature(numeric)
    assert sig is not None and {c.dtype for c in sig.columns} == {"float"}
    mixed = frame.assign(colour=["red", "blue", "green"] * 4)
    encoder = make_column_transformer((OneHotEncoder(), ["colour"]), remainder="passthrough")
    categorical = make_pipeline(encoder, LogisticRegression()).fit(mixed, y)
    sig = infer_signature(categorical)
    assert sig is not None and sig.names == (*IRIS, "colour")
    assert {c.dtype for c in sig.columns} == {"any"}
    # types from an example when the model only knows names
    typed = infer_signature(categorical, input_example=mixed.head(1))
    assert typed is not None and typed.columns[-1].dtype == "str"
    assert typed.columns[0].dtype == "float"


def test_input_examples() -> None:
    rows = infer_signature(None, input_example=[{"a": 1.0, "b": "x"}])
    assert rows is not None and str(rows) == "a: float, b: str" and rows.named
    array = infer_signature(None, input_example=np.zeros((2, 3), dtype=np.int64))
    assert array is not None and str(array) == "f0: int, f1: int, f2: int" and not array.named
    assert infer_signature(None) is None


# -- stored and read back -------------------------------------------------------------------


def test_a_signature_survives_a_reopen_and_the_model_channel(env: Env, db_url: str) -> None:
    _register(env.meta, env.blobs, "iris", _fitted(named=True))
    env.registry.set_alias("iris", 1, "prod", user="ann")
    with MetaStore.open(db_url) as meta:  # another store on the database: nothing cached
        version = Registry(meta, blobs=env.blobs).get("iris@prod")
        model = Model("iris@prod", registry=Registry(meta, blobs=env.blobs))
    assert version.signature is not None and version.signature.names == tuple(IRIS)
    assert model.signature == version.signature
    assert version.to_json()["signature"]["columns"][0] == {
        "name": "sepal_length",
        "dtype": "float",
    }
    # a hosted worker gets its records over the model channel: the signature goes along
    assert record_from_json(record_to_json(version)).signature == version.signature


# -- validation ---------------------------------------------------------------------------------


def _iris() -> Signature:
    return Signature.of(dict.fromkeys(IRIS, "float"))


def _raised(call: Any) -> HTTPError:
    with pytest.raises(HTTPError) as info:
        call()
    assert info.value.status == 422 and info.value.type == "validation_error"
    return info.value


def test_validation_errors_name_the_field() -> None:
    sig = _iris()
    one = _raised(lambda: sig.validate([[5.1]], field="rows"))
    assert (one.field, one.message) == ("rows[0]", f"{EXPECTED_4}, got 1")
    typed = _raised(lambda: sig.validate([[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, "x", 0.2]]))
    assert typed.field == "rows[1][2]"
    assert typed.message == "rows[1][2] (petal_length) must be a number, got 'x'"
    assert typed.items == (1,)
    missing = _raised(lambda: sig.validate([{"sepal_length": 1, "sepal_width": 2}]))
    assert missing.field == "rows[0].petal_length"
    assert missing.message.startswith("missing features petal_length, petal_width;")
    extra = _raised(lambda: sig.validate([{**dict.fromkeys(IRIS, 1.0), "colour": "red"}]))
    assert (extra.field, extra.message.split(";")[0]) == (
        "rows[0].colour",
        "unknown feature colour",
    )
    assert _raised(lambda: sig.validate({"rows": []})).field == "rows"
    assert _raised(lambda: sig.validate_row([1, 2, 3, True])).field == "features[3]"
    nan = _raised(lambda: sig.validate_row([1, 2, 3, float("nan")], field="x"))
    assert "finite" in nan.message


def test_validation_returns_rows_in_column_order() -> None:
    sig = _iris()
    reordered = {"petal_width": 0.2, "petal_length": 1.4, "sepal_width": 3.5, "sepal_length": 5}
    assert sig.validate([reordered, [1, 2, 3, 4]]) == [[5, 3.5, 1.4, 0.2], [1, 2, 3, 4]]
    assert sig.validate(np.ones((2, 4))) == [[1.0] * 4, [1.0] * 4]
    unnamed = Signature.from_json({"columns": [{"name": "f0", "dtype": "float"}], "named": False})
    assert "fitted without column names" in _raised(lambda: unnamed.validate([{"f0": 1}])).message
    shaped = Signature.of({"vector": ("float", (3,))})
    assert shaped.validate([[[1, 2, 3]]]) == [[[1, 2, 3]]]
    assert "must have 3 values, got 2" in _raised(lambda: shaped.validate([[[1, 2]]])).message


def test_every_bad_row_is_named_in_items_for_a_batched_endpoint() -> None:
    error = _raised(lambda: _iris().validate([[1, 2, 3, 4], [1], [1, 2, 3, 4], ["a"] * 4]))
    assert error.items == (1, 3) and error.field == "rows[1]"


# -- shown -----------------------------------------------------------------------------------------


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRuns]:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    for var in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
        monkeypatch.delenv(var, raising=False)
    runs = FakeRuns(tmp_path / "home")
    yield runs
    runs.close()
    _stores.reset()


def _cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["models", *args])
    assert result.exit_code == code, result.output
    return result.output


def test_models_show_prints_the_signature(fake: FakeRuns) -> None:
    _register(fake.meta, fake.blobs, "iris", _fitted(named=True))
    _register(fake.meta, fake.blobs, "iris", {"w": 1})
    detail = _cli("show", "iris:1")
    assert "4 columns (from sklearn)" in detail
    lines = detail.splitlines()
    start = lines.index("inputs")
    table = [line.split() for line in lines[start + 1 :] if line.strip()]
    assert table == [
        ["#", "column", "type"],
        ["0", "sepal_length", "float"],
        ["1", "sepal_width", "float"],
        ["2", "petal_length", "float"],
        ["3", "petal_width", "float"],
    ]
    assert "no signature recorded" in _cli("show", "iris:2")
    listing = _cli("show", "iris").splitlines()
    header = next(line for line in listing if line.startswith("version"))
    assert header.split()[-1] == "inputs"
    rows = [line.split() for line in listing if line.strip()[:1].isdigit()]
    assert [(row[0], row[-1]) for row in rows] == [("2", "-"), ("1", "4")]


def test_models_register_takes_the_inputs(fake: FakeRuns) -> None:
    run_id = fake.run("IrisFlow")
    task_id = fake.task(run_id, "end", artifacts={"model": {"w": 1}})
    fake.finish(run_id)
    address = f"IrisFlow/{run_id}/end/{task_id}:model"
    _cli("register", address, "-n", "iris", "-i", "sepal_length:float", "-i", "colour:str")
    assert "1  colour        str" in _cli("show", "iris:1")
    assert "unknown dtype 'decimal'" in _cli(
        "register", address, "-n", "iris", "-i", "x:decimal", code=2
    )


def test_the_model_page_shows_the_latest_signature(fake: FakeRuns) -> None:
    _register(fake.meta, fake.blobs, "iris", _fitted(named=False))
    app = standalone(fake.meta, fake.blobs, Guard(KeyStore(fake.meta), bind_host="127.0.0.1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client = TestClient(app, client=("127.0.0.1", 1234), base_url="http://127.0.0.1:8002")
    page = client.get("/ui/models/iris")
    assert page.status_code == 200
    assert page.text.count("<td><code>float</code></td>") == 4
    assert "fitted without column names" in page.text
