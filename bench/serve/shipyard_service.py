"""The same model as shipyard services.

    shipyard deploy bench/serve/shipyard_service.py:Iris --name iris --replicas 1
    shipyard deploy bench/serve/shipyard_service.py:Accelerator --name accel
    shipyard deploy bench/serve/shipyard_service.py:Sleepy --name sleepy

``Iris``: ``POST /iris/predict`` with ``{"features": [5.1, 3.5, 1.4, 0.2]}`` answers the class
index, like the bare app and the BentoML service.

``Accelerator`` behaves like a model on a serial accelerator: every call of the model holds
one lock for ``BENCH_HOLD_MS`` (default 5 ms) whatever the number of rows, as a GPU kernel
launch would. ``predict`` takes one row per call; ``classify`` is a batch endpoint that joins
the rows of concurrent requests into one call of up to 64 rows.

``Sleepy`` stands for an endpoint that waits on I/O (a remote model, a database): each call
sleeps ``BENCH_WAIT_MS`` (default 200 ms) in ``time.sleep`` and answers 0. ``wait`` runs
inline (the default: one call at a time per replica), ``wait_pooled`` in a pool of
``POOL`` threads (``@endpoint(concurrency=POOL)``).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Annotated

from iris_model import train
from pydantic import Field

from shipyard.serve import Service, endpoint

Features = Annotated[list[float], Field(min_length=4, max_length=4)]
MAX_WAIT_MS = 5.0
POOL = 16


class Iris(Service):
    """Iris classes from 4 measurements."""

    def load(self) -> None:
        self.model = train()

    @endpoint
    def predict(self, features: Features) -> int:
        """The class index (0, 1 or 2) of one flower."""
        return int(self.model.predict([features])[0])


class Accelerator(Service):
    """The iris model behind a serial device: each call holds the device ~5 ms."""

    def load(self) -> None:
        self.model = train()
        self.device = threading.Lock()
        self.hold = float(os.environ.get("BENCH_HOLD_MS", "5")) / 1000

    def _run(self, rows: list[list[float]]) -> list[int]:
        with self.device:
            time.sleep(self.hold)
            return [int(label) for label in self.model.predict(rows)]

    @endpoint
    def predict(self, features: Features) -> int:
        """One flower per call of the device."""
        return self._run([features])[0]

    @endpoint(batch=True, max_batch_size=64, max_wait_ms=MAX_WAIT_MS)
    def classify(self, rows: list[Features]) -> list[int]:
        """Many flowers; concurrent requests share one call of the device."""
        return self._run(rows)


class Sleepy(Service):
    """Endpoints that wait on I/O ~200 ms per call, inline and in a pool of threads."""

    def load(self) -> None:
        self.seconds = float(os.environ.get("BENCH_WAIT_MS", "200")) / 1000

    @endpoint
    def wait(self, features: Features) -> int:
        """One call at a time per replica (the default)."""
        time.sleep(self.seconds)
        return 0

    @endpoint(concurrency=POOL)
    def wait_pooled(self, features: Features) -> int:
        """Up to POOL calls at a time per replica."""
        time.sleep(self.seconds)
        return 0
