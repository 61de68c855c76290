"""The bounded agent loop behind ``POST /docs-qa/ask``, and the answer without a language model.

>>> result = answer("How do I copy a file?", search, chat)        # doctest: +SKIP
>>> result.answer, result.citations, result.steps, result.model    # doctest: +SKIP

``search(query)`` returns the passages for a query (objects with ``doc``, ``title``, ``text``
and ``score``, as :class:`shipyard.retrieval.Hit`); ``chat(messages, tools, tool_choice)``
sends OpenAI-format messages to a gateway route and returns the response JSON, raising
:class:`ChatUnavailable` when the route cannot answer (:func:`gateway_chat` makes one).

The loop, and where it stops:

1. The question itself is searched first; its passages go into the first message, numbered
   ``[1]``, ``[2]``, ... The model answers citing those numbers, or calls ``search_docs``.
2. Each ``search_docs`` call adds the new passages (numbered on) as the tool's answer. A
   call with arguments that are not JSON, or of a tool that does not exist, is answered with
   the error, and the model may try again.
3. The loop stops on an answer, on a search the model already made (it would learn nothing
   new), or after ``max_steps`` turns; then one last turn forces an answer without tools.
4. Citations are the numbered passages the answer names; a number that no search returned is
   dropped, from the citations and from the text. When nothing at all was retrieved the
   answer is "No answer in the documents.", whatever the model said.
5. When the route cannot answer (429, 5xx, down) — or there is no route — the answer is
   :func:`extractive_answer`: sentences of the retrieved passages, which says it is one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

NO_ANSWER = "No answer in the documents."
#: the model name an answer without a language model reports
EXTRACTIVE = "extractive"
#: passages one search returns to the model
SEARCH_K = 5

SYSTEM = (
    "You answer questions about a set of documents, using only the numbered passages you are "
    "given. Cite the passages you use with their numbers in brackets, like [1] or [2][3]. If "
    "the passages do not hold the answer, call search_docs with a better query, or say that "
    "the documents do not answer it. Be brief."
)
FORCE = (
    "Answer the question now from the passages above, citing them by number; no more "
    "searches. If they do not hold the answer, say so."
)
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "search_docs",
            "description": "Search the documents; returns numbered passages.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "what to look for"}},
                "required": ["query"],
            },
        },
    }
]


class Passage(Protocol):
    """What a search returns (:class:`shipyard.retrieval.Hit` is one)."""

    @property
    def doc(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def score(self) -> float: ...


Search = Callable[[str], Sequence[Passage]]
Chat = Callable[[list[dict[str, Any]], list[dict[str, Any]], str], dict[str, Any]]


class ChatUnavailable(Exception):
    """The route did not answer: rate-limited, failing, down or unreachable (``status`` is the
    HTTP status, 0 when there was none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class NoRoute(ChatUnavailable):
    """There is no language-model route to ask (none configured, or the gateway has none of
    that name for our key)."""


@dataclass(frozen=True)
class Citation:
    doc: str
    text: str


@dataclass
class Answer:
    answer: str
    citations: list[Citation] = field(default_factory=list)
    #: model turns taken (0 for an extractive answer with no model call)
    steps: int = 0
    model: str = EXTRACTIVE

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "citations": [{"doc": c.doc, "text": c.text} for c in self.citations],
            "steps": self.steps,
            "model": self.model,
        }


class _Retrieved:
    """Every passage any search returned, numbered in the order first seen."""

    def __init__(self) -> None:
        self.passages: list[Passage] = []
        self._numbers: dict[tuple[str, str], int] = {}

    def add(self, hits: Sequence[Passage]) -> list[tuple[int, Passage]]:
        numbered = []
        for hit in hits:
            key = (hit.doc, hit.text)
            if key not in self._numbers:
                self.passages.append(hit)
                self._numbers[key] = len(self.passages)
            numbered.append((self._numbers[key], hit))
        return numbered

    def get(self, number: int) -> Passage | None:
        return self.passages[number - 1] if 1 <= number <= len(self.passages) else None


def _show(numbered: list[tuple[int, Passage]], query: str) -> str:
    if not numbered:
        return f"No passages found for {query!r}."
    return "\n\n".join(f"[{n}] {hit.doc} ({hit.title})\n{hit.text}" for n, hit in numbered)


def _normal(query: str) -> str:
    return " ".join(query.casefold().split())


def answer(question: str, search: Search, chat: Chat | None, max_steps: int = 4) -> Answer:
    """Answer ``question`` from the documents ``search`` finds, with the model behind ``chat``
    (None: no language model, an extractive answer). At most ``max_steps`` turns with tools,
    then one without."""
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps!r}")
    retrieved = _Retrieved()
    searched = {_normal(question)}
    first = retrieved.add(search(question))
    if chat is None:
        return extractive_answer(question, retrieved.passages, reason="no language model route")
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": f"Passages:\n\n{_show(first, question)}\n\nQuestion: {question}",
        },
    ]
    steps = 0
    reply: dict[str, Any] | None = None
    model = ""
    try:
        while steps < max_steps:
            response = chat(messages, TOOLS, "auto")
            steps += 1
            model = str(response.get("model") or model)
            message = _message(response)
            calls = message.get("tool_calls") or []
            if not calls:
                reply = message
                break
            messages.append(
                {k: v for k, v in message.items() if k in ("role", "content", "tool_calls")}
            )
            repeated = False
            for call in calls:
                result, repeated_now = _run_tool(call, search, retrieved, searched)
                repeated = repeated or repeated_now
                messages.append(
                    {"role": "tool", "tool_call_id": call.get("id", ""), "content": result}
                )
            if repeated:
                break
        if reply is None:  # repeated search or max_steps: one turn without tools
            messages.append({"role": "user", "content": FORCE})
            response = chat(messages, TOOLS, "none")
            steps += 1
            model = str(response.get("model") or model)
            reply = _message(response)
    except NoRoute as exc:
        return extractive_answer(
            question, retrieved.passages, reason=f"no language model route: {exc}"
        )
    except ChatUnavailable as exc:
        fallback = extractive_answer(
            question, retrieved.passages, reason=f"the language model did not answer: {exc}"
        )
        fallback.steps = steps
        return fallback
    return _grounded(reply.get("content") or "", retrieved, steps, model or "unknown")


def _message(response: dict[str, Any]) -> dict[str, Any]:
    try:
        message = response["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise ChatUnavailable(
            f"the route's answer has no choices[0].message: {str(response)[:200]}"
        ) from None
    if not isinstance(message, dict):
        raise ChatUnavailable("the route's choices[0].message is not an object")
    return message


def _run_tool(
    call: dict[str, Any], search: Search, retrieved: _Retrieved, searched: set[str]
) -> tuple[str, bool]:
    """The tool message for one call, and whether it repeats an earlier search."""
    function = call.get("function") or {}
    name = function.get("name")
    if name != "search_docs":
        return f"Error: unknown tool {name!r}; the only tool is search_docs.", False
    raw = function.get("arguments") or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        return f"Error: the arguments of search_docs are not valid JSON ({exc}): {raw!r}", False
    query = arguments.get("query") if isinstance(arguments, dict) else None
    if not isinstance(query, str) or not query.strip():
        return 'Error: search_docs needs {"query": "<what to look for>"}.', False
    if _normal(query) in searched:
        return f"Already searched for {query!r}: answer from the passages above.", True
    searched.add(_normal(query))
    return _show(retrieved.add(search(query)), query), False


_MARK = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def _grounded(text: str, retrieved: _Retrieved, steps: int, model: str) -> Answer:
    """The model's answer with its citations checked against what was retrieved."""
    if not retrieved.passages:
        return Answer(NO_ANSWER, [], steps, model)
    cited: list[Citation] = []

    def keep(match: re.Match[str]) -> str:
        numbers = [int(n) for n in match.group(1).split(",")]
        known = [n for n in numbers if retrieved.get(n) is not None]
        for n in known:
            hit = retrieved.get(n)
            assert hit is not None
            citation = Citation(hit.doc, hit.text)
            if citation not in cited:
                cited.append(citation)
        return "".join(f"[{n}]" for n in known)

    kept = _MARK.sub(keep, text)
    kept = re.sub(r"[ \t]+([.,;:])", r"\1", kept).strip()
    return Answer(kept or NO_ANSWER, cited, steps, model)


# --- without a language model ----------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9_]+")
_STOP = frozenset(
    "a an and are as at be by can do does for from how i in is it of on or that the this to "
    "what when where which who why with you your".split()
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def extractive_answer(question: str, hits: Sequence[Passage], reason: str = "") -> Answer:
    """The answer without a language model: the sentences of the top passages that share
    the most words with the question (at most two), citing their passages; it says it is
    extractive, and why (``reason``)."""
    if not hits:
        return Answer(NO_ANSWER, [], 0, EXTRACTIVE)
    wanted = _words(question)
    scored = []
    for rank, hit in enumerate(hits[:SEARCH_K]):
        for position, sentence in enumerate(_SENTENCE.split(" ".join(hit.text.split()))):
            overlap = len(wanted & _words(sentence))
            if overlap and len(sentence) > 20:
                scored.append((-overlap, rank, position, sentence, hit))
    if not scored:  # no sentence shares a word: the best passage's opening
        top = hits[0]
        scored = [(0, 0, 0, _SENTENCE.split(" ".join(top.text.split()))[0], top)]
    best = sorted(scored, key=lambda s: s[:3])[:2]
    best.sort(key=lambda s: (s[1], s[2]))  # in reading order
    citations: list[Citation] = []
    for *_, hit in best:
        citation = Citation(hit.doc, hit.text)
        if citation not in citations:
            citations.append(citation)
    why = f" ({reason})" if reason else ""
    text = " ".join(s[3] for s in best)
    return Answer(
        f"Extractive answer, quoted from the documents{why}: {text}", citations, 0, EXTRACTIVE
    )


# --- the route ---------------------------------------------------------------------------------


def gateway_chat(client: Any, route: str, key: str) -> Chat:
    """A :data:`Chat` that POSTs to ``/v1/chat/completions`` of the gateway ``client`` (an
    ``httpx.Client`` whose ``base_url`` is the gateway or the host it is mounted in, and whose
    ``timeout`` bounds each turn) with the route's name as ``model`` and ``key`` as the
    bearer token."""
    import httpx

    def chat(
        messages: list[dict[str, Any]], tools: list[dict[str, Any]], tool_choice: str
    ) -> dict[str, Any]:
        body = {"model": route, "messages": messages, "tools": tools, "tool_choice": tool_choice}
        try:
            response = client.post(
                "/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {key}"},
            )
        except httpx.HTTPError as exc:
            raise ChatUnavailable(f"the gateway could not be reached: {exc}") from None
        if response.status_code == 200:
            try:
                data = response.json()
            except ValueError:
                raise ChatUnavailable(
                    "the route answered 200 with a body that is not JSON", 200
                ) from None
            if not isinstance(data, dict):
                raise ChatUnavailable("the route answered 200 with JSON that is not an object", 200)
            return data
        detail = _error_message(response)
        if response.status_code == 404 or (response.status_code in (401, 403)):
            raise NoRoute(f"route {route!r}: {response.status_code} {detail}", response.status_code)
        raise ChatUnavailable(
            f"route {route!r}: {response.status_code} {detail}", response.status_code
        )

    return chat


def _error_message(response: Any) -> str:
    try:
        error = response.json().get("error")
        return str(error.get("message") if isinstance(error, dict) else error)[:300]
    except (ValueError, AttributeError):
        return str(response.text)[:300]
