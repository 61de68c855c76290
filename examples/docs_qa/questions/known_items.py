"""Generate known-item questions from a reStructuredText corpus: one per section heading whose
first paragraph opens with a plain sentence (no inline markup), asking what the document says
under that heading; the gold passage is that sentence, and so is the gold answer.

    python examples/docs_qa/questions/known_items.py \\
        --docs /usr/share/doc/python3.11/html/_sources --n 200 --out known_items.jsonl

They are easy by construction (the heading's words are in the question) and say how well
search finds a named section; they are reported apart from the hand-written questions, never
pooled with them. The sample is deterministic: the items are ordered by a hash of their id.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)][.!?])\s")
_MARKUP = re.compile(r"`|\*|:[a-z]+:|\|")
DEFAULT_EXCLUDE = ("whatsnew/*", "includes/*", "c-api/*", "distutils/*")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def sections(text: str) -> Iterator[tuple[str, list[str]]]:
    """(heading, lines that follow it up to the next heading) for each RST section."""
    lines = text.splitlines()
    heads = [
        i
        for i in range(len(lines) - 1)
        if lines[i].strip()
        and not lines[i].startswith("..")
        and (not lines[i].startswith(" ") or (i > 0 and _UNDERLINE.match(lines[i - 1])))
        and _UNDERLINE.match(lines[i + 1])
        and len(lines[i + 1].strip()) >= len(lines[i].strip())
    ]
    for n, i in enumerate(heads):
        end = heads[n + 1] if n + 1 < len(heads) else len(lines)
        yield lines[i].strip(), lines[i + 2 : end]


def first_sentence(body: list[str]) -> str | None:
    """The first sentence of the first plain paragraph of a section, if it is markup-free
    and of a useful length."""
    paragraph: list[str] = []
    for line in body:
        if not line.strip():
            if paragraph:
                break
            continue
        if line.startswith((" ", "\t", "..", "*", "-", "+", "|", "=")) and not paragraph:
            return None  # a directive, list, table or block first: no plain opening
        paragraph.append(line.strip())
    text = " ".join(paragraph)
    sentence = _SENTENCE_END.split(text, maxsplit=1)[0].strip()
    if not (40 <= len(sentence) <= 300) or not sentence.endswith(".") or _MARKUP.search(sentence):
        return None
    return sentence


def generate(docs: Path, exclude: tuple[str, ...] = DEFAULT_EXCLUDE) -> list[dict[str, Any]]:
    """Every known-item question of the corpus at ``docs``, in id order."""
    items: dict[str, dict[str, Any]] = {}
    for path in sorted(docs.rglob("*.rst.txt")):
        rel = path.relative_to(docs).as_posix()
        if any(fnmatch(rel, pattern) for pattern in exclude):
            continue
        found = list(sections(path.read_text(encoding="utf-8", errors="replace")))
        if not found:
            continue
        title = found[0][0]
        for heading, body in found[1:]:
            sentence = first_sentence(body)
            if sentence is None or _MARKUP.search(heading):
                continue
            qid = f"ki-{_slug(rel.removesuffix('.rst.txt'))}-{_slug(heading)}"
            if qid in items:
                continue
            digest = hashlib.sha1(qid.encode()).hexdigest()
            items[qid] = {
                "id": qid,
                "question": f'In "{title}", what does the section "{heading}" say?',
                "split": "dev" if int(digest[:8], 16) % 5 < 2 else "test",
                "gold": [{"doc": rel, "quote": sentence}],
                "answer": sentence,
                "_order": digest,
            }
    return [items[k] for k in sorted(items)]


def sample(items: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` items chosen by hash (stable when the corpus grows), in id order."""
    chosen = sorted(items, key=lambda item: item["_order"])[:n]
    return [
        {k: v for k, v in item.items() if k != "_order"}
        for item in sorted(chosen, key=lambda i: i["id"])
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--docs", type=Path, default=Path("/usr/share/doc/python3.11/html/_sources")
    )
    parser.add_argument("--n", type=int, default=200, help="questions to keep")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("known_items.jsonl"))
    parser.add_argument("--exclude", action="append", help="glob of documents to leave out")
    args = parser.parse_args(argv)
    if not args.docs.is_dir():
        parser.error(
            f"--docs {str(args.docs)!r} is not a directory (apt-get install python3.11-doc)"
        )
    items = sample(generate(args.docs, tuple(args.exclude or DEFAULT_EXCLUDE)), args.n)
    args.out.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    print(f"{len(items)} known-item questions -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
