"""Service-level objectives a load test is judged by: ``--slo 'p99<50ms,errors<0.1%'``.

Clauses are separated by commas; each is ``METRIC OP VALUE``:

- a latency percentile ``p50``, ``p90``, ``p99``, ``p99.9`` (or ``p999``), any ``pNN.N``,
  ``max`` or ``mean``, with a unit: ``us``, ``ms`` or ``s`` (``p99<50ms``). In the open model
  this is the corrected latency, the one that counts the stalls;
- ``errors``, the share of requests that failed (an error status or no answer), as a
  percentage or a fraction (``errors<0.1%``, ``errors<0.001``);
- ``rps``, answers per second achieved (``rps>=450``).

``OP`` is ``<``, ``<=``, ``>`` or ``>=``.

>>> [o.text for o in parse_slo("p99<50ms, errors<0.1%")]
['p99<50ms', 'errors<0.1%']
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from shipyard.loadtest.errors import SLOError

_CLAUSE = re.compile(
    r"^(?P<metric>p\d+(?:\.\d+)?|max|mean|errors|rps)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>us|µs|ms|s|%)?$"
)
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_TO_MS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Objective:
    """One clause: ``metric`` (``p99``, ``max``, ``mean``, ``errors``, ``rps``), the operator
    and the threshold in ms (latencies), as a fraction (errors) or per second (rps)."""

    text: str
    metric: str
    op: str
    value: float

    @property
    def percentile(self) -> float | None:
        """The percentile of a ``pNN`` metric (``p999`` is 99.9), else None."""
        if not self.metric.startswith("p"):
            return None
        digits = self.metric[1:]
        if digits == "999":
            return 99.9
        return float(digits)

    def met_by(self, actual: float) -> bool:
        return _OPS[self.op](actual, self.value)


@dataclass(frozen=True)
class Check:
    """An objective and what the run achieved."""

    objective: Objective
    actual: float
    met: bool

    def describe(self) -> str:
        o = self.objective
        if o.metric == "errors":
            got, wanted = f"{self.actual * 100:.3g}%", f"{o.value * 100:.3g}%"
        elif o.metric == "rps":
            got, wanted = f"{self.actual:.1f}", f"{o.value:g}"
        else:
            got, wanted = f"{self.actual:.3g} ms", f"{o.value:g} ms"
        verdict = "met" if self.met else "MISSED"
        return f"{o.text}: {o.metric} = {got} (wanted {o.op} {wanted}) {verdict}"


def parse_slo(text: str) -> list[Objective]:
    """The objectives of ``text`` (see the module docstring); :class:`SLOError` names the
    clause that does not parse."""
    objectives = []
    for raw in text.split(","):
        clause = raw.strip()
        if not clause:
            continue
        match = _CLAUSE.match(clause.replace(" ", ""))
        if not match:
            raise SLOError(
                f"--slo clause {clause!r} is not METRIC OP VALUE, e.g. p99<50ms, "
                "errors<0.1%, rps>=450 (metrics: pNN, max, mean, errors, rps)"
            )
        metric, op, number, unit = (
            match["metric"],
            match["op"],
            float(match["value"]),
            match["unit"],
        )
        if metric == "errors":
            if unit not in (None, "%"):
                raise SLOError(f"--slo clause {clause!r}: errors take a % or a fraction")
            value = number / 100 if unit == "%" else number
        elif metric == "rps":
            if unit is not None:
                raise SLOError(f"--slo clause {clause!r}: rps is a plain number (rps>=450)")
            value = number
        else:
            if unit in (None, "%"):
                raise SLOError(
                    f"--slo clause {clause!r}: a latency needs a unit: us, ms or s (p99<50ms)"
                )
            value = number * _TO_MS[unit]
            if (
                metric.startswith("p")
                and not 0 < float("99.9" if metric == "p999" else metric[1:]) <= 100
            ):
                raise SLOError(f"--slo clause {clause!r}: a percentile is above 0 and at most 100")
        objectives.append(Objective(clause, metric, op, value))
    if not objectives:
        raise SLOError("--slo is empty: give clauses such as 'p99<50ms,errors<0.1%'")
    return objectives


def check(
    objectives: list[Objective],
    *,
    latency_ms: Callable[[float], float],
    max_ms: float,
    mean_ms: float,
    error_rate: float,
    rps: float,
) -> list[Check]:
    """Each objective against the run's figures (``latency_ms(percent)``)."""
    checks = []
    for o in objectives:
        if o.metric == "errors":
            actual = error_rate
        elif o.metric == "rps":
            actual = rps
        elif o.metric == "max":
            actual = max_ms
        elif o.metric == "mean":
            actual = mean_ms
        else:
            actual = latency_ms(o.percentile or 0.0)
        checks.append(Check(o, actual, o.met_by(actual)))
    return checks


__all__ = ["Check", "Objective", "check", "parse_slo"]
