"""The typo-tolerant title matcher: what the fuzzy ranker ranks and what a query matches, in a
few milliseconds over the whole catalogue.

rapidfuzz's ``WRatio`` (the best of the whole, partial and word-order ratios) orders titles
well but costs about 1.6 µs a title: 95 ms a query over 58,788 titles, and ``partial_ratio``
another 35 ms. So the expensive scorers only see candidates, found the way Meilisearch and
Typesense bound typo tolerance — per word, by the word's length:

- **words within typos**: each keyword of the query (the retrieval core's
  :func:`~shipyard.retrieval.keywords.words`) matches the title words at most
  :func:`typo_budget` edits away (optimal string alignment: a swap of neighbours is one
  typo): none under :data:`ONE_TYPO` letters, one under :data:`TWO_TYPOS`, two from there
  (Meilisearch's defaults, ``minWordSizeForTypos``); the last keyword also matches as a
  prefix (``godfath`` → ``godfather``), as both engines do while people type. Candidate title
  words come from the catalogue's vocabulary: for a one-typo keyword, the words sharing it
  or one of its one-letter deletions (symmetric deletion: every word of 4-9 letters is
  indexed under those once), for a two-typo keyword the words of a length within two (a
  word ``b`` edits away is within ``b`` letters of the same length); only those are
  compared, not every title. A title matches when it holds every keyword so (Meilisearch's
  ``all`` matching strategy);
- **whole titles within typos**: ``ratio`` (normalised Indel similarity, 2 ms over the
  catalogue) of the query against every title; a title at least :data:`TITLE_MATCH` matches
  (two typos in a ten-letter title still do).

The fuzzy ranker scores ``WRatio`` over the :data:`NEAREST` titles of highest ``ratio`` and
up to :data:`WORD_CANDIDATES` of the titles matching every keyword within typos (the most
voted first: ties in ``WRatio`` go to them anyway); other titles score 0.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

#: keywords this long get one typo (shorter: none) — Meilisearch's ``oneTypo`` default
ONE_TYPO = 5
#: keywords this long get two typos — Meilisearch's ``twoTypos`` default
TWO_TYPOS = 9
#: the last keyword matches as a prefix from this many letters
PREFIX_MIN = 3
#: the ratio (0-100) from which a whole title counts as matching the query
TITLE_MATCH = 80.0
#: titles of highest ``ratio`` the ranker scores with ``WRatio``
NEAREST = 200
#: titles matching every keyword within typos the ranker scores with ``WRatio``
WORD_CANDIDATES = 800


def typo_budget(word: str) -> int:
    """The typos a keyword tolerates: 0 under 5 letters, 1 under 9, else 2."""
    n = len(word)
    return 0 if n < ONE_TYPO else 1 if n < TWO_TYPOS else 2


def deletions(word: str) -> set[str]:
    """``word`` and every string one letter shorter that deleting a letter of it gives."""
    return {word, *(word[:i] + word[i + 1 :] for i in range(len(word)))}


def fuzzy_text(title: str) -> str:
    """A title as the whole-title scorers compare it (rapidfuzz's default processor: lower
    case, non-alphanumerics as spaces, trimmed)."""
    from rapidfuzz.utils import default_process

    return str(default_process(title))


class TitleMatcher:
    """Titles (as :func:`fuzzy_text` gives them), their keywords' postings and vocabulary."""

    def __init__(self, titles: Sequence[str], votes: np.ndarray) -> None:
        from shipyard.retrieval.keywords import words

        self.titles = list(titles)
        self.votes = np.asarray(votes, dtype=np.int64)
        rows_of: dict[str, list[int]] = {}
        for row, title in enumerate(self.titles):
            for term in set(words(title)):
                rows_of.setdefault(term, []).append(row)
        #: the vocabulary, sorted (prefixes are a range of it)
        self.vocab = sorted(rows_of)
        self.postings = [np.asarray(rows_of[t], dtype=np.int64) for t in self.vocab]
        self.term_id = {t: i for i, t in enumerate(self.vocab)}
        # the vocabulary again, by length: the words of lengths a..b are one slice of it
        lengths = np.asarray([len(t) for t in self.vocab], dtype=np.int64)
        self.len_order = np.argsort(lengths, kind="stable")
        self.len_words = [self.vocab[i] for i in self.len_order]
        sizes = np.arange(lengths.max(initial=0) + 2)
        self.len_start = np.searchsorted(lengths[self.len_order], sizes)
        # one-typo keywords (5-8 letters) look their candidates up: every word of 4-9
        # letters under itself and each of its one-letter deletions. A word one typo away
        # (a letter deleted, inserted, replaced, or two neighbours swapped) shares one of
        # those with the keyword's own (symmetric deletion, as SymSpell does)
        self.one_off: dict[str, list[int]] = {}
        for i, term in enumerate(self.vocab):
            if ONE_TYPO - 1 <= len(term) <= TWO_TYPOS:
                for variant in deletions(term):
                    self.one_off.setdefault(variant, []).append(i)

    def __len__(self) -> int:
        return len(self.titles)

    # -- words within typos -----------------------------------------------------------

    def similar_terms(self, term: str, *, prefix: bool = False) -> np.ndarray:
        """Ids of the vocabulary's words within :func:`typo_budget` of ``term`` (and, with
        ``prefix``, those starting with it)."""
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        budget = typo_budget(term)
        found = [np.asarray([self.term_id[term]] if term in self.term_id else [], np.int64)]
        if budget == 1:
            near = sorted({i for v in deletions(term) for i in self.one_off.get(v, ())})
            if near:
                far = process.cdist([term], [self.vocab[i] for i in near], scorer=OSA.distance,
                                    score_cutoff=1, dtype=np.int32, workers=1)[0]  # fmt: skip
                found.append(np.asarray(near, dtype=np.int64)[far <= 1])
        elif budget:
            top = len(self.len_start) - 1
            lo = self.len_start[min(top, max(1, len(term) - budget))]
            hi = self.len_start[min(top, len(term) + budget + 1)]
            if hi > lo:
                # one C call over the words of lengths len(term) ± budget (a word b edits
                # away is within b letters of the same length); above the cutoff: budget + 1
                far = process.cdist([term], self.len_words[lo:hi], scorer=OSA.distance,
                                    score_cutoff=budget, dtype=np.int32, workers=1)[0]  # fmt: skip
                found.append(self.len_order[lo + np.flatnonzero(far <= budget)])
        if prefix and len(term) >= PREFIX_MIN:
            start = bisect.bisect_left(self.vocab, term)
            end = bisect.bisect_left(self.vocab, term + "\uffff")
            found.append(np.arange(start, end, dtype=np.int64))
        return np.unique(np.concatenate(found))

    def word_matches(self, query: str) -> np.ndarray:
        """The titles holding every keyword of ``query`` within typos (the last also as a
        prefix); no keywords: no title."""
        from shipyard.retrieval.keywords import words

        terms = list(dict.fromkeys(words(query)))
        out = np.zeros(len(self), dtype=bool)
        if not terms:
            return out
        out[:] = True
        last_is_prefix = not query.endswith(" ")
        for n, term in enumerate(terms):
            prefix = last_is_prefix and n == len(terms) - 1
            ids = self.similar_terms(term, prefix=prefix)
            has = np.zeros(len(self), dtype=bool)
            if len(ids):
                has[np.concatenate([self.postings[i] for i in ids])] = True
            out &= has
            if not out.any():
                break
        return out

    # -- whole titles -------------------------------------------------------------------

    def ratios(self, query: str) -> np.ndarray:
        """``ratio`` (0-100) of the query against every title."""
        from rapidfuzz import fuzz, process

        q = fuzzy_text(query)
        if not q:
            return np.zeros(len(self), dtype=np.float32)
        return np.asarray(
            process.cdist([q], self.titles, scorer=fuzz.ratio, dtype=np.float32, workers=1)[0]
        )

    def match(
        self, query: str, mask: np.ndarray | None = None, *, score: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, matched)`` for ``query`` among the titles of ``mask`` (None: all):
        the ranker's ``WRatio`` scores (0 for titles it did not score or outside ``mask``;
        all 0 without ``score``: when the fuzzy ranker is not fused) and the boolean mask of
        the titles that match it (see the module doc)."""
        from rapidfuzz import fuzz, process

        whole = self.ratios(query)
        words = self.word_matches(query)
        if mask is not None:
            whole = np.where(mask, whole, 0.0)
            words &= mask
        matched = words | (whole >= TITLE_MATCH)
        scores = np.zeros(len(self), dtype=np.float32)
        q = fuzzy_text(query)
        if not q or not score:
            return scores, matched
        near = np.flatnonzero(whole > 0)
        if len(near) > NEAREST:
            near = near[np.argpartition(-whole[near], NEAREST - 1)[:NEAREST]]
        by_words = np.flatnonzero(words)
        if len(by_words) > WORD_CANDIDATES:
            keep = np.argpartition(-self.votes[by_words], WORD_CANDIDATES - 1)
            by_words = by_words[keep[:WORD_CANDIDATES]]
        rows = np.union1d(near, by_words)
        if len(rows):
            scored = process.cdist(
                [q], [self.titles[r] for r in rows], scorer=fuzz.WRatio, dtype=np.float32,
                workers=1,
            )[0]  # fmt: skip
            scores[rows] = scored
        return scores, matched
