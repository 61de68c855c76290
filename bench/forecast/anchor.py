"""statsforecast alone: ``cross_validation`` with its own ``n_jobs`` over the bench's work.

    python bench/forecast/anchor.py OUT.pkl [--n-jobs 2] [--series N]

Writes the cross-validation frame (``unique_id, ds, cutoff, y`` and one column per model) to
OUT.pkl and prints ``BENCH_JSON {...}`` with the seconds ``cross_validation`` took.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from work import MODELS, ORIGINS, H, model, tourism  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--series", type=int, default=0)
    args = parser.parse_args()
    from statsforecast import StatsForecast

    frame, season, freq = tourism(args.series)
    models = [model(name, season) for name in MODELS]
    started = time.perf_counter()
    result = StatsForecast(models=models, freq=freq, n_jobs=args.n_jobs).cross_validation(
        df=frame, h=H, n_windows=ORIGINS, step_size=H
    )
    seconds = time.perf_counter() - started
    result.to_pickle(args.out)
    print("BENCH_JSON " + json.dumps({"compute_seconds": seconds, "rows": len(result)}))


if __name__ == "__main__":
    main()
