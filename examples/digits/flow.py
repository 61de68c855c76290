"""The demo: train scikit-learn classifiers on the bundled digits data in parallel, keep
the best, and score it on held-out data.

    python examples/digits/flow.py run --max-workers 2
    python examples/digits/flow.py run --grid '[0.0005, 0.001, 0.01]'
"""

from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.svm import SVC

from shipyard import FlowSpec, JSONType, Parameter, current, retry, step


class DigitsFlow(FlowSpec):
    """Fit an SVM per gamma in the grid on the digits data set; keep the best."""

    grid = Parameter(
        "grid",
        type=JSONType,
        default="[0.0001, 0.0005, 0.001, 0.005, 0.01]",
        help="gamma values to try (JSON list)",
    )
    test_size = Parameter("test_size", default=0.25, help="held-out fraction")

    @step
    def start(self):
        """Load the data set that ships inside scikit-learn (no download) and split it."""
        digits = load_digits()
        self.x_train, self.x_test, self.y_train, self.y_test = train_test_split(
            digits.data, digits.target, test_size=self.test_size, random_state=0
        )
        print(f"{len(self.x_train)} training and {len(self.x_test)} test images")
        self.next(self.train, foreach="grid")

    @retry(times=1, minutes_between_retries=0)
    @step
    def train(self):
        """One model per gamma, scored by 3-fold cross-validation on the training set."""
        self.gamma = self.input
        model = SVC(gamma=self.gamma)
        self.cv_score = float(cross_val_score(model, self.x_train, self.y_train, cv=3).mean())
        self.model = model.fit(self.x_train, self.y_train)
        print(f"gamma={self.gamma}: cv accuracy {self.cv_score:.4f}")
        self.next(self.pick)

    @step
    def pick(self, inputs):
        """Keep the model with the best cross-validation score."""
        best = max(inputs, key=lambda i: i.cv_score)
        self.model, self.gamma, self.cv_score = best.model, best.gamma, best.cv_score
        self.scores = {i.gamma: i.cv_score for i in inputs}
        self.merge_artifacts(inputs, include=["x_test", "y_test"])
        self.next(self.end)

    @step
    def end(self):
        """Score the chosen model on the held-out images."""
        self.test_accuracy = float(self.model.score(self.x_test, self.y_test))
        print(f"best gamma={self.gamma}: test accuracy {self.test_accuracy:.4f}")
        current.register_model(
            "digits",
            self.model,
            metrics={"test_accuracy": self.test_accuracy, "cv_accuracy": self.cv_score},
            tags=[f"gamma={self.gamma}"],
        )
        print(f"look at it: shipyard show {current.flow_name}/{current.run_id}")


if __name__ == "__main__":
    DigitsFlow()
