"""The same model as a BentoML 1.4 service, with BentoML's defaults.

    BENCH_BENTO_WORKERS=2 bentoml serve bentoml_service:Iris --working-dir bench/serve

``POST /predict`` with ``{"features": [5.1, 3.5, 1.4, 0.2]}`` answers the class index.
The number of worker processes is the only setting changed (``workers=`` of
``@bentoml.service``, read from ``BENCH_BENTO_WORKERS``, default 1).

``Sleepy`` (``bentoml serve bentoml_service:Sleepy``) is shipyard_service.py's ``Sleepy``:
``POST /wait`` sleeps ``BENCH_WAIT_MS`` (200) in a sync API, which BentoML runs in a thread
pool of ``threads=`` threads (BentoML's default: 1); ``BENCH_BENTO_THREADS`` sets it.
"""

from __future__ import annotations

import os
import time
from typing import Annotated

import bentoml
from iris_model import train
from pydantic import Field

Features = Annotated[list[float], Field(min_length=4, max_length=4)]


@bentoml.service(workers=int(os.environ.get("BENCH_BENTO_WORKERS", "1")))
class Iris:
    """Iris classes from 4 measurements."""

    def __init__(self) -> None:
        self.model = train()

    @bentoml.api
    def predict(self, features: Features) -> int:
        """The class index (0, 1 or 2) of one flower."""
        return int(self.model.predict([features])[0])


_THREADS = os.environ.get("BENCH_BENTO_THREADS")


@bentoml.service(workers=1, **({"threads": int(_THREADS)} if _THREADS else {}))
class Sleepy:
    """A sync API that waits on I/O ~200 ms per call."""

    def __init__(self) -> None:
        self.seconds = float(os.environ.get("BENCH_WAIT_MS", "200")) / 1000

    @bentoml.api
    def wait(self, features: Features) -> int:
        """Sleeps, then answers 0."""
        time.sleep(self.seconds)
        return 0
