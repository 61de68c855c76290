"""The service that tests/serve/test_fuzz.py deploys and fuzzes through its OpenAPI document.

Each endpoint exercises one kind of parameter the host must validate and document: JSON
primitives, optional parameters with defaults, nested pydantic models, lists and dicts,
``Annotated`` constraints, a ``Literal``, a batch endpoint and an async endpoint. Every
endpoint echoes what it was given (so a response carries generated data back through the
response serializer) and none of them raises on input its annotations accept.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from shipyard.serve import Service, endpoint

Code = Annotated[str, Field(min_length=2, max_length=8, pattern=r"^[a-z]+$")]
Unit = Annotated[float, Field(ge=0, le=1)]


class Address(BaseModel):
    street: str
    zip_code: Annotated[str, Field(min_length=5, max_length=5)]
    country: Literal["fr", "de", "us"] = "us"


class Customer(BaseModel):
    name: str
    age: Annotated[int, Field(ge=0, le=150)]
    address: Address
    tags: list[str] = []


class Line(BaseModel):
    sku: str
    # bounded so that the totals stay finite: a non-finite float is a separate, known issue
    # (test_fuzz.py::test_a_non_finite_float_response_matches_the_document)
    qty: Annotated[int, Field(ge=1, le=1_000_000)]
    price: Annotated[float, Field(ge=-1e9, le=1e9)]


class Order(BaseModel):
    customer: Customer
    lines: list[Line]
    note: str | None = None


class Pair(BaseModel):
    left: str
    right: str


class Totals(BaseModel):
    lines: int
    units: int
    amount: float
    country: str


class Fuzz(Service):
    """A target for schema-driven fuzzing: one endpoint per kind of parameter."""

    @endpoint
    def primitives(self, text: str, count: int, ratio: float, flag: bool) -> dict[str, Any]:
        """Every JSON primitive as a required parameter."""
        return {"text": text, "count": count, "ratio": ratio, "flag": flag}

    @endpoint
    def optional(
        self, name: str | None = None, limit: int = 10, tags: list[str] | None = None
    ) -> list[str]:
        """Optional parameters with defaults (None, a number, a nullable list)."""
        out = [] if name is None else [name]
        return (out + (tags or []))[: max(limit, 0)]

    @endpoint
    def nested(self, order: Order) -> Totals:
        """A pydantic model nested three deep, with a list of models inside."""
        return Totals(
            lines=len(order.lines),
            units=sum(line.qty for line in order.lines),
            amount=sum(line.qty * line.price for line in order.lines),
            country=order.customer.address.country,
        )

    @endpoint
    def echo_order(self, order: Order) -> Order:
        """A model returned as-is: the response schema is the model's serialization schema."""
        return order

    @endpoint
    def collections(
        self, values: list[float], counts: dict[str, int], matrix: list[list[int]] | None = None
    ) -> dict[str, Any]:
        """Lists, dicts and a nested list."""
        return {"n": len(values), "keys": sorted(counts), "rows": len(matrix or [])}

    @endpoint
    def constrained(
        self,
        code: Code,
        score: Unit,
        n: Annotated[int, Field(gt=0, lt=100)],
        mode: Literal["fast", "exact"] = "fast",
        items: Annotated[list[int], Field(min_length=1, max_length=5)] = [1],  # noqa: B006
    ) -> dict[str, Any]:
        """``Annotated`` constraints: string length and pattern, numeric bounds, list size."""
        return {"code": code, "score": score, "n": n, "mode": mode, "items": items}

    @endpoint(batch=True, max_batch_size=16, max_wait_ms=2)
    def similarity(self, pairs: list[Pair]) -> list[float]:
        """A batch endpoint: one score per pair, pairs from concurrent requests joined."""
        return [float(p.left == p.right) for p in pairs]

    @endpoint
    async def greet(self, name: str, delay_ms: Annotated[int, Field(ge=0, le=5)] = 0) -> str:
        """An async endpoint."""
        await asyncio.sleep(delay_ms / 1000)
        return f"hello {name}"
