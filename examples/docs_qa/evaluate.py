"""The best answer option the budget allows: run held-out questions through each option —
the extractive answer, and every gateway chat route given (the local model, providers) through
the agent loop — and compare answer token F1, citation precision, p50 latency and cost per
1,000 questions in a card; given ``--budget`` (USD per 1,000 questions), name the best option
under it.

    python examples/docs_qa/evaluate.py run                          # extractive only
    SHIPYARD_GATEWAY_KEY=sy_... python examples/docs_qa/evaluate.py run \\
        --routes local-chat,chat --gateway-config gateway.yaml --budget 0.5 --max-workers 1
    python examples/docs_qa/evaluate.py run --max-generations 5 --limit 3   # what CI affords

    start ─► option (one per answer option) ─► choose (the card) ─► end

- **Questions**: ``--questions`` (the hand-written set by default; the generated known-item
  set is a separate file and its card says so — the two are never pooled), ``--split``
  (``test``: held out), ``--limit``.
- **Search**: the registered index ``--index`` (``docs-index``, or ``docs-index:3``, or a
  saved index directory), top ``--k`` passages, the same for every option.
- **Options**: ``extractive`` (no model: :func:`agent.extractive_answer` on the question's
  passages) and each route of ``--routes``, reached at ``--gateway`` with the key in the
  environment variable ``--key-env`` (never a parameter: parameters are recorded), answered by
  :func:`agent.answer` with ``--max-steps``.
- **Generations** (model calls) are bounded by ``--max-generations`` (0: no bound): it is
  split evenly over the routes, and since a question may take ``max-steps + 1`` calls, the
  question list is cut, for every option alike, to what the bound affords.
- **Cost**: tokens from each answer's ``usage`` priced with the route's ``prices`` in the
  gateway's own file (``--gateway-config``) by the gateway's own :func:`cost` — what its
  usage accounting records. No prices on a route (the local model): 0, and the card states
  its compute time per 1,000 questions instead. Without ``--gateway-config`` a route's cost is
  unknown and it is not chosen under a budget.
- **Latency** is per question, search included; run with ``--max-workers 1`` so options do
  not share the CPU while timed (the default, 2, is quicker and fine for quality).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from agent import EXTRACTIVE, Chat, Passage, answer, extractive_answer, gateway_chat
from questions import HAND_WRITTEN, Question, load_questions
from questions.scoring import (
    citation_precision,
    cost_per_1k,
    mean_or_none,
    p50,
    token_f1,
)

from shipyard import FlowSpec, Parameter, step
from shipyard.cards import BarChart, Markdown, Table, card
from shipyard.flow.spec import Inputs

Search = Callable[[str], Sequence[Passage]]
#: ties on the card's three decimals of F1 are broken by cost, then p50 latency, then name
F1_DECIMALS = 3


class EvaluationError(ValueError):
    """Bad parameters of the evaluation; the message names the parameter."""


class _Environ(Mapping[str, str]):
    """The environment for reading a gateway file for its prices only: a credential that is
    not set here is not needed and reads as a placeholder."""

    def __getitem__(self, name: str) -> str:
        return os.environ.get(name, "unset")

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


def route_prices(config: str, routes: Sequence[str]) -> dict[str, Any]:
    """Each route's ``prices`` (None when it has none) from the gateway's YAML file."""
    from shipyard.gateway import load_config

    loaded = load_config(config, environ=_Environ())
    missing = [r for r in routes if r not in loaded.routes]
    if missing:
        raise EvaluationError(
            f"--routes {', '.join(missing)}: not in the gateway file {config!r} "
            f"(it has {', '.join(sorted(loaded.routes))})"
        )
    return {r: loaded.routes[r].prices for r in routes}


class Metered:
    """A :data:`agent.Chat` that counts its calls and prices the tokens each answer's
    ``usage`` reports, as the gateway's usage accounting does; it refuses calls past
    ``limit`` (a bound the question list already respects)."""

    def __init__(self, chat: Chat, prices: Any, limit: int = 0) -> None:
        self._chat = chat
        self.prices = prices
        self.limit = limit
        self.calls = 0
        self.cost = 0.0
        self.tokens_in = 0
        self.tokens_out = 0

    def __call__(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], tool_choice: str
    ) -> dict[str, Any]:
        from shipyard.gateway.budgets import cost

        if self.limit and self.calls >= self.limit:
            raise RuntimeError(
                f"more than {self.limit} generations: the question list should have been cut"
            )
        self.calls += 1
        response = self._chat(messages, tools, tool_choice)
        usage = response.get("usage") or {}
        tokens_in, tokens_out = usage.get("prompt_tokens"), usage.get("completion_tokens")
        self.tokens_in += int(tokens_in or 0)
        self.tokens_out += int(tokens_out or 0)
        self.cost += cost(self.prices, tokens_in, tokens_out)
        return response


def score_option(
    option: str,
    questions: Sequence[Question],
    search: Search,
    chat: Metered | None,
    max_steps: int = 4,
) -> list[dict[str, Any]]:
    """One row per question: the answer, its F1 and citation precision, latency and cost."""
    rows = []
    for q in questions:
        calls, spent = (chat.calls, chat.cost) if chat else (0, 0.0)
        started = time.perf_counter()
        if chat is None:
            result = extractive_answer(q.question, search(q.question))
        else:
            result = answer(q.question, search, chat, max_steps=max_steps)
        latency = time.perf_counter() - started
        text = _without_preamble(result.answer) if result.model == EXTRACTIVE else result.answer
        rows.append(
            {
                "id": q.id,
                "option": option,
                "f1": token_f1(text, q.answer),
                "citation_precision": citation_precision(
                    [(c.doc, c.text) for c in result.citations], q.gold
                ),
                "citations": len(result.citations),
                "latency_s": latency,
                "cost": (chat.cost - spent) if chat else 0.0,
                "generations": (chat.calls - calls) if chat else 0,
                "model": result.model,
                "fallback": chat is not None and result.model == EXTRACTIVE,
                "answer": result.answer,
            }
        )
    return rows


def _without_preamble(text: str) -> str:
    """An extractive answer without the sentence saying it is one: scored on its content."""
    head, sep, rest = text.partition(": ")
    return rest if sep and head.startswith("Extractive answer") else text


def summarise(option: str, rows: Sequence[dict[str, Any]], priced: bool) -> dict[str, Any]:
    """The card's row for one option (``priced``: its cost is known)."""
    latencies = [r["latency_s"] for r in rows]
    n = len(rows)
    return {
        "option": option,
        "questions": n,
        "answer_f1": mean_or_none(r["f1"] for r in rows),
        "citation_precision": mean_or_none(r["citation_precision"] for r in rows),
        "uncited": sum(r["citations"] == 0 for r in rows),
        "p50_latency_s": p50(latencies),
        "cost_per_1k_usd": cost_per_1k([r["cost"] for r in rows]) if priced else None,
        "compute_s_per_1k": 1000 * sum(latencies) / n if n else None,
        "generations": sum(r["generations"] for r in rows),
        "fallbacks": sum(r["fallback"] for r in rows),
    }


def choose(summaries: Sequence[dict[str, Any]], budget: float) -> tuple[str | None, str]:
    """The best option within ``budget`` (USD per 1,000 questions): the highest answer F1;
    ties (equal to the card's three decimals) go to the cheaper, then the faster (p50), then
    the name. Returns the option (None if none fits) and why, in words."""
    fits = [
        s
        for s in summaries
        if s["cost_per_1k_usd"] is not None and s["cost_per_1k_usd"] <= budget and s["questions"]
    ]
    out = [s["option"] for s in summaries if s not in fits]
    if not fits:
        return (
            None,
            f"No option fits a budget of ${budget:g} per 1,000 questions "
            f"({', '.join(out)} cost more or unknown).",
        )

    def rank(s: dict[str, Any]) -> tuple[float, float, float, str]:
        f1 = round(s["answer_f1"] or 0.0, F1_DECIMALS)
        return (-f1, s["cost_per_1k_usd"], s["p50_latency_s"] or 0.0, s["option"])

    ordered = sorted(fits, key=rank)
    best = ordered[0]
    why = (
        f"Best within ${budget:g} per 1,000 questions: {best['option']} "
        f"(answer F1 {best['answer_f1'] or 0:.3f}, ${best['cost_per_1k_usd']:.4f} per 1,000)."
    )
    tied = [s for s in ordered[1:] if rank(s)[0] == rank(best)[0]]
    if tied:
        names = ", ".join(s["option"] for s in tied)
        why += (
            f" It ties on F1 with {names} at three decimals; the tie goes to the cheaper, "
            "then the lower p50 latency, then the name."
        )
    if out:
        why += f" Over the budget or of unknown cost: {', '.join(out)}."
    return best["option"], why


def open_search(index: str, k: int) -> Search:
    """Search the index: a saved index directory, or a registered model (``docs-index``,
    ``docs-index:3``) whose files are the index."""
    from shipyard.retrieval import HybridIndex

    if Path(index).is_dir():
        loaded = HybridIndex.load(index)
    else:
        from shipyard.registry import Model

        loaded = HybridIndex.load(Model(index).load().path)

    def search(query: str) -> Sequence[Passage]:
        return loaded.search(query, k=k)

    return search


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


class DocsQAEvalFlow(FlowSpec):
    """Answer options side by side on held-out questions; the best one a budget allows."""

    questions = Parameter("questions", default=str(HAND_WRITTEN), help="question file")
    split = Parameter("split", default="test", help="dev, test (held out) or all")
    limit = Parameter("limit", default=0, help="at most this many questions (0: all)")
    index = Parameter("index", default="docs-index", help="registered index or index directory")
    k = Parameter("k", default=5, help="passages per search")
    routes = Parameter("routes", default="", help="comma-separated gateway chat routes")
    gateway = Parameter("gateway", default="http://127.0.0.1:8000", help="the gateway's URL")
    gateway_config = Parameter("gateway-config", default="", help="the gateway's YAML (prices)")
    key_env = Parameter("key-env", default="SHIPYARD_GATEWAY_KEY", help="variable with the key")
    max_steps = Parameter("max-steps", default=4, help="agent turns with tools")
    max_generations = Parameter("max-generations", default=0, help="model calls in all (0: any)")
    budget = Parameter("budget", default=-1.0, help="USD per 1,000 questions (<0: none)")
    timeout = Parameter("timeout", default=120.0, help="seconds per model call")

    @step
    def start(self) -> None:
        """Read the questions, list the options, cut the questions to the generation bound."""
        question_set = load_questions(self.questions)
        self.question_kind = question_set.kind
        chosen = question_set.split(self.split)
        if self.limit < 0 or self.k < 1 or self.max_steps < 1 or self.max_generations < 0:
            raise EvaluationError(
                "--limit and --max-generations must be >= 0, --k and --max-steps >= 1; got "
                f"{self.limit}, {self.max_generations}, {self.k}, {self.max_steps}"
            )
        if self.limit:
            chosen = chosen[: self.limit]
        route_names = [r.strip() for r in self.routes.split(",") if r.strip()]
        if len(set(route_names)) != len(route_names) or EXTRACTIVE in route_names:
            raise EvaluationError(
                f"--routes {self.routes!r}: names must be distinct and not {EXTRACTIVE!r}"
            )
        self.per_route_generations = 0
        if route_names and self.max_generations:
            self.per_route_generations = self.max_generations // len(route_names)
            affordable = self.per_route_generations // (self.max_steps + 1)
            if affordable == 0:
                raise EvaluationError(
                    f"--max-generations {self.max_generations} is too few for {len(route_names)} "
                    f"route(s): a question may take --max-steps + 1 = {self.max_steps + 1} calls"
                )
            chosen = chosen[:affordable]
        if not chosen:
            raise EvaluationError(f"no questions in split {self.split!r} of {self.questions!r}")
        if route_names and not os.environ.get(self.key_env):
            raise EvaluationError(
                f"--routes needs a gateway key in the environment variable {self.key_env}"
            )
        self.prices = (
            route_prices(self.gateway_config, route_names) if self.gateway_config else None
        )
        self.chosen = chosen
        self.options = [EXTRACTIVE, *route_names]
        print(
            f"{len(chosen)} {self.question_kind} questions ({self.split}) x options {self.options}"
        )
        self.next(self.option, foreach="options")

    @step
    def option(self) -> None:
        """Every question through one option."""
        self.name = self.input
        search = open_search(self.index, self.k)
        search("warm-up")  # the embedding model loads on the first query: not a latency
        chat = None
        client = None
        if self.name != EXTRACTIVE:
            import httpx

            client = httpx.Client(base_url=self.gateway, timeout=self.timeout)
            prices = self.prices.get(self.name) if self.prices else None
            chat = Metered(
                gateway_chat(client, self.name, os.environ[self.key_env]),
                prices,
                self.per_route_generations,
            )
        try:
            self.rows = score_option(self.name, self.chosen, search, chat, self.max_steps)
        finally:
            if client is not None:
                client.close()
        priced = self.name == EXTRACTIVE or self.prices is not None
        self.summary = summarise(self.name, self.rows, priced)
        print(self.summary)
        self.next(self.choose)

    @card(type="blank")
    @step
    def choose(self, inputs: Inputs) -> None:
        """The card: the options side by side, and the best one within the budget."""
        from shipyard import current

        self.summaries = sorted((i.summary for i in inputs), key=lambda s: s["option"])
        self.rows = [row for i in inputs for row in i.rows]
        self.merge_artifacts(inputs, include=["question_kind", "chosen"])
        self.choice, self.why = (None, "No budget given (--budget).")
        if self.budget >= 0:
            self.choice, self.why = choose(self.summaries, self.budget)
        n = len(self.chosen)
        current.card.append(
            Markdown(
                f"# Answer options on {n} {self.question_kind} questions ({self.split})\n\n"
                f"Index `{self.index}`, top {self.k} passages; agent loop with at most "
                f"{self.max_steps} tool turns. {self.why}"
            )
        )
        current.card.append(
            Table(
                [
                    {
                        "option": s["option"],
                        "answer F1": _fmt(s["answer_f1"], ".3f"),
                        "citation precision": _fmt(s["citation_precision"], ".3f"),
                        "uncited answers": s["uncited"],
                        "p50 latency (s)": _fmt(s["p50_latency_s"], ".3f"),
                        "cost per 1,000 (USD)": _fmt(s["cost_per_1k_usd"], ".4f"),
                        "compute per 1,000 (s)": _fmt(s["compute_s_per_1k"], ".0f"),
                        "generations": s["generations"],
                        "fallbacks to extractive": s["fallbacks"],
                    }
                    for s in self.summaries
                ],
                title="Per option",
            )
        )
        current.card.append(BarChart({s["option"]: s["answer_f1"] or 0.0 for s in self.summaries}))
        self.next(self.end)

    @step
    def end(self) -> None:
        print(self.why)


if __name__ == "__main__":
    DocsQAEvalFlow()
