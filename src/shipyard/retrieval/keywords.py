"""The words BM25 indexes and searches: lower-cased, English stop words out, a plural ``s``
off; a dotted or underscored name (``os.path.join``, ``max_workers``) counts whole and by
its parts, so both ``os.path.join`` and ``join`` find it.

>>> words("How does os.path.join handle max_workers?")
['os.path.join', 'os', 'path', 'join', 'handle', 'max_workers', 'max', 'worker']
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]\w*(?:\.\w+)*|_\w+")

#: English stop words (a short list: BM25's idf already discounts common words)
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves""".split()
)


def _stem(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """``text``'s index terms, in order."""
    out: list[str] = []
    for match in _WORD.finditer(text.lower()):
        token = match.group(0).strip("._")
        if not token:
            continue
        parts = [p for p in re.split(r"[._]+", token) if p]
        if len(parts) > 1:
            out.append(token)
        for part in parts:
            if part not in STOP_WORDS and (len(part) > 1 or part.isdigit()):
                out.append(_stem(part))
    return out
