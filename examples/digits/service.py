"""The digits model as a service: one image per request, or many, batched across requests.

    shipyard deploy examples/digits/service.py:Digits --name digits --model digits@prod
    curl -H 'content-type: application/json' localhost:8000/digits/predict \\
         -d '{"pixels": [0, 0, 5, 13, 9, 1, 0, 0, ...]}'       # 64 values, 0..16
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from shipyard import Model
from shipyard.serve import Service, endpoint

Pixels = Annotated[list[Annotated[float, Field(ge=0, le=16)]], Field(min_length=64, max_length=64)]


class Prediction(BaseModel):
    digit: int
    model: str


class Digits(Service):
    """Classify 8x8 handwritten digits (scikit-learn's bundled data set)."""

    def load(self) -> None:
        model = Model("digits@prod")
        self.model = model.load()
        self.version = model.resolve()

    @endpoint
    def predict(self, pixels: Pixels) -> Prediction:
        """The digit in one 8x8 image (64 gray levels, 0 to 16)."""
        digit = int(self.model.predict([pixels])[0])
        return Prediction(digit=digit, model=self.version)

    @endpoint(batch=True, max_batch_size=64, max_wait_ms=5)
    def classify(self, images: list[Pixels]) -> list[int]:
        """Many images; concurrent requests are joined into one call of the model."""
        return [int(d) for d in self.model.predict(images)]
