"""The model every server in the serving benchmark answers with: scikit-learn's
LogisticRegression fitted on the iris data set that ships inside scikit-learn (no download).

Each server fits it once at start (a fraction of a second), so the three servers answer with
the same model without sharing a file format.
"""

from __future__ import annotations

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def train() -> LogisticRegression:
    """LogisticRegression on iris: 4 floats in, the class index (0, 1 or 2) out."""
    features, labels = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000).fit(features, labels)
