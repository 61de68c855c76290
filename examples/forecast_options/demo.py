"""``make demo-forecast``: backtest the forecasting options on a sample of the Tourism
competition's quarterly series, read the recommendation, serve the chosen option's forecasts.

The flow backtests seasonal naive (the current method), the improved statistical option
(AutoETS / AutoARIMA / AutoTheta per series) and LightGBM and an ensemble over rolling
origins, writes the report card, registers the option its rule recommends as
``forecaster``, and forecasts every series into the precompute cache. A host serves
``/forecasts/get`` from it; the flow is registered as a schedule (quarterly, and on the
``forecast-data-arrived`` event).

    python examples/forecast_options/demo.py                 # 24 series, 2 origins
    python examples/forecast_options/demo.py --series 20 --origins 1   # small (the tests)

Runs under its own SHIPYARD_HOME (``.demo/forecast/``), ends by itself and leaves nothing
running; the last lines say how to bring the host and the UI back up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # examples/demo_support.py
sys.path.insert(0, str(HERE))  # data.py

from demo_support import deployed, post, post_refused, shipyard, step  # noqa: E402

FLOW = "ForecastOptionsFlow"


def sample_ids(series: int) -> list[str]:
    """The ids of the first ``series`` Tourism quarterly series (what ``--series`` keeps)."""
    from data import load

    return [str(i) for i in load("tourism").head(series).frame["unique_id"].unique()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=24, help="Tourism series in the sample")
    parser.add_argument("--origins", type=int, default=2, help="rolling origins per series")
    parser.add_argument("--horizon", type=int, default=8, help="quarters ahead")
    args = parser.parse_args(argv)
    home = Path(os.environ.get("SHIPYARD_HOME") or HERE.parents[1] / ".demo" / "forecast")
    os.environ["SHIPYARD_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)

    ids = sample_ids(args.series)
    step(f"backtest: {len(ids)} Tourism quarterly series, {args.origins} origins, h={args.horizon}")
    started = time.monotonic()
    flow = [sys.executable, str(HERE / "flow.py"), "run", "--series", str(args.series),
            "--horizon", str(args.horizon), "--origins", str(args.origins),
            "--max-workers", "2"]  # fmt: skip
    print("$ " + " ".join(flow[1:]), flush=True)
    subprocess.run(flow, check=True)
    print(f"(the flow took {time.monotonic() - started:.0f} s)")
    shipyard("models", "show", "forecaster")

    with deployed(
        home,
        "the chosen option's forecasts served by a host",
        f"{HERE / 'service.py'}:Forecasts",
        "forecasts",
    ) as url:
        for series_id, h in ((ids[0], 4), (ids[-1], 2)):
            step(f"forecast: {series_id}, {h} quarters ahead, with 80% and 95% intervals")
            answer = post(f"{url}/forecasts/get", {"series_id": series_id, "h": h})
            assert isinstance(answer, dict)
            print(f"POST /forecasts/get {json.dumps({'series_id': series_id, 'h': h})}")
            source = answer["interval_source"]
            print(f"  {answer['family']} ({answer['model']}, {source} intervals)")
            for p in answer["forecast"]:
                print(f"  {p['ds']}  {p['mean']:12.1f}   80% [{p['lo_80']:.1f}, {p['hi_80']:.1f}]"
                      f"   95% [{p['lo_95']:.1f}, {p['hi_95']:.1f}]")  # fmt: skip
        step("bad input: a clear 404 and 422")
        unknown = b'{"series_id": "no-such-series", "h": 2}'
        print(f"unknown series -> {post_refused(f'{url}/forecasts/get', unknown)}")
        beyond = json.dumps({"series_id": ids[0], "h": args.horizon + 1}).encode()
        print(f"h beyond the horizon -> {post_refused(f'{url}/forecasts/get', beyond)}")
        step("schedule: quarterly, and whenever new data arrives")
        shipyard("schedule", "create", str(HERE / "flow.py"))
        shipyard("schedule", "next", FLOW, "-n", "2")

    step("done: the host has stopped and nothing is left running")
    print("Read the report (the options, the rule, fan charts): shipyard show " + FLOW)
    print("or the run's card in the UI. New data starts the flow by itself:")
    print('  shipyard event publish forecast-data-arrived --payload \'{"path": "new.csv"}\'')
    print("Bring the host, the UI, the scheduler and the forecasts service back up with:")
    print(f"  SHIPYARD_HOME={home} .venv/bin/shipyard serve --port 8000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
