"""The screenplay entities pipeline as a BentoML 1.4 service, with BentoML's defaults (run by
bench/entities.py from bench/.venvs/bentoml, which has the same spaCy pin):

    BENCH_ENTITIES_MODEL=DIR PYTHONPATH=examples/screenplay_entities \\
        bentoml serve bento_service:Entities --working-dir bench/entities

``POST /extract {"text": str}`` and ``POST /extract_batch {"texts": [str]}`` answer what the
shipyard service answers: the example's ``Extractor`` (parse, rules, the spaCy model, merge)
over the same pipeline directory. One worker process, BentoML's default threads.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml


@bentoml.service(workers=1)
class Entities:
    """Entities and scenes of screenplays."""

    def __init__(self) -> None:
        from pipeline import Extractor

        self.extractor = Extractor.load(os.environ["BENCH_ENTITIES_MODEL"])
        self.extractor.extract("INT. DINER - NIGHT\n\nMARIA\nWarm up, Tom.\n")

    @bentoml.api
    def extract(self, text: str) -> dict[str, Any]:
        return self.extractor.extract(text)

    @bentoml.api
    def extract_batch(self, texts: list[str]) -> dict[str, Any]:
        return {"results": self.extractor.extract_many(texts, batch_size=32)}
