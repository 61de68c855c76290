"""End to end, through a real host: a flow registers a scikit-learn model fitted on a
DataFrame (its signature inferred), a service validates requests against it in one line,
and a request with 1 feature instead of 4 is a 422 naming the field, not a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hosts import HostProcess

from shipyard.registry import Registry, Signature
from shipyard.serve import Service, ServiceClient, endpoint
from shipyard.store import context
from shipyard.testing import run_flow, write_flow

IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
EXPECTED_4 = "expected 4 features (sepal_length, sepal_width, petal_length, petal_width)"

FLOW = """
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from shipyard import FlowSpec, current, step

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class IrisFlow(FlowSpec):
    @step
    def start(self):
        rng = np.random.default_rng(0)
        X = pd.DataFrame(rng.normal(size=(30, 4)) + np.repeat([0, 3, 6], 10)[:, None],
                         columns=COLUMNS)
        self.model = LogisticRegression().fit(X, np.repeat([0, 1, 2], 10))
        current.register_model("iris", self.model)
        self.next(self.end)

    @step
    def end(self):
        pass
"""

SERVICE = """
import pandas as pd

from shipyard import Model, Service, endpoint


class Iris(Service):
    def load(self):
        self.model = Model("iris@prod")
        self.classifier = self.model.load()

    @endpoint
    def predict(self, rows: list[list[float] | dict[str, float]]) -> list[int]:
        X = self.model.signature.validate(rows, field="rows")
        frame = pd.DataFrame(X, columns=self.model.signature.names)
        return [int(c) for c in self.classifier.predict(frame)]
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    home = tmp_path_factory.mktemp("signature-service")
    process = HostProcess(home / "home").start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SHIPYARD_HOME", str(process.home))
            for var in ("SHIPYARD_DB_URL", "SHIPYARD_STORE_URL"):
                patch.delenv(var, raising=False)
            context.reset()
            try:
                assert run_flow(write_flow(FLOW, home, "iris_flow")).successful
                Registry().set_alias("iris", 1, "prod")
            finally:
                context.reset()
        service = home / "iris_service.py"
        service.write_text(SERVICE)
        process.deploy(f"{service}:Iris", "iris")
        yield process
    finally:
        process.stop()


def test_one_feature_instead_of_four_is_a_422_naming_the_field(host: HostProcess) -> None:
    reply = host.post("/iris/predict", {"rows": [[5.1, 3.5, 1.4, 0.2], [5.1]]})
    assert reply.status_code == 422
    assert reply.json() == {
        "error": {
            "type": "validation_error",
            "message": "expected 4 features (sepal_length, sepal_width, petal_length, "
            "petal_width), got 1",
            "field": "rows[1]",
        }
    }


def test_rows_that_fit_the_signature_are_predicted(host: HostProcess) -> None:
    row = {"petal_width": 6.0, "petal_length": 6.0, "sepal_width": 6.0, "sepal_length": 6.0}
    reply = host.post("/iris/predict", {"rows": [[0.0, 0.0, 0.0, 0.0], row]})
    assert (reply.status_code, reply.json()) == (200, [0, 2])
    missing = host.post("/iris/predict", {"rows": [{"sepal_length": 1.0}]})
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "rows[0].sepal_width"


def test_models_show_prints_the_inputs_the_service_checks(host: HostProcess) -> None:
    shown = host.cli("models", "show", "iris@prod", remote=False).stdout
    assert "4 columns (from sklearn)" in shown
    assert "3  petal_width   float" in shown


# -- in a batched endpoint: each caller hears about its own rows -----------------------------


class BatchedIris(Service):
    def load(self) -> None:
        self.signature = Signature.of(dict.fromkeys(IRIS, "float"))
        self.calls: list[int] = []

    @endpoint(batch=True, max_batch_size=16)
    def predict(self, rows: list[Any]) -> list[int]:
        self.calls.append(len(rows))
        return [0 for _ in self.signature.validate(rows, field="rows")]


def test_in_a_batch_each_bad_request_gets_its_own_rows_error() -> None:
    good = [1.0, 2.0, 3.0, 4.0]
    bodies = [{"rows": [good]}, {"rows": [good, [5.1]]}, {"rows": [good]}, {"rows": [["a"] * 4]}]
    with ServiceClient(BatchedIris) as client:
        replies = client.post_many("predict", bodies)
        calls = client.instance.calls  # type: ignore[attr-defined]
    assert [status for status, _ in replies] == [200, 422, 200, 422]
    assert replies[1][1]["error"] == {
        "type": "validation_error",
        "message": f"{EXPECTED_4}, got 1",
        "field": "rows[1]",  # its second row (the call's fourth)
    }
    assert replies[3][1]["error"]["field"] == "rows[0][0]"
    assert replies[3][1]["error"]["message"] == (
        "rows[0][0] (sepal_length) must be a number, got 'a'"
    )
    assert calls == [5, 2]  # one call, then the good requests again, once
