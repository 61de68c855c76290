"""OpenAI-compatible upstreams (OpenAI, vLLM, llama.cpp server, Ollama...): the body goes
through untouched except ``model``, which becomes the route's upstream model; the answer comes
back byte for byte, streams included, while the ``usage`` it reports is read on the side."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from shipyard.gateway.model import RouteType
from shipyard.gateway.providers.base import Adapter, Call, Usage
from shipyard.gateway.upstream_http import Request

PATHS = {
    RouteType.CHAT: "/chat/completions",
    RouteType.COMPLETIONS: "/completions",
    RouteType.EMBEDDINGS: "/embeddings",
}


class OpenAIAdapter(Adapter):
    """An OpenAI-compatible server at ``upstream.base_url``."""

    def request(self, call: Call) -> Request:
        payload = {**call.payload, "model": self.route.upstream.model}
        return self.post_json(PATHS[call.kind], payload, call)

    def body(self, data: bytes) -> tuple[bytes, Usage]:
        usage = Usage()
        if b'"usage"' in data:
            try:
                usage.take(json.loads(data).get("usage"))
            except (ValueError, AttributeError):
                pass
        return data, usage

    async def stream(
        self, call: Call, chunks: AsyncIterator[bytes], usage: Usage
    ) -> AsyncIterator[bytes]:
        scanner = UsageScanner(usage)
        async for chunk in chunks:
            yield chunk  # first to the caller; the scan never holds a chunk back
            scanner.feed(chunk)


class UsageScanner:
    """Finds ``usage`` in the ``data:`` lines of an OpenAI event stream, chunk by chunk."""

    def __init__(self, usage: Usage) -> None:
        self.usage = usage
        self.tail = b""

    def feed(self, chunk: bytes) -> None:
        data = self.tail + chunk if self.tail else chunk
        if b'"usage"' not in data:
            cut = data.rfind(b"\n")  # keep a partial last line: usage may straddle chunks
            self.tail = data[cut + 1 :] if cut >= 0 else data
        else:
            lines = data.split(b"\n")
            self.tail = lines.pop()
            self._scan(lines)
        if len(self.tail) > 1 << 20:
            self.tail = b""

    def _scan(self, lines: list[bytes]) -> None:
        for line in lines:
            if line.startswith(b"data:") and b'"usage"' in line:
                try:
                    event = json.loads(line[5:])
                except ValueError:
                    continue
                if isinstance(event, dict):
                    self.usage.take(event.get("usage"))


__all__ = ["PATHS", "OpenAIAdapter", "UsageScanner"]
