"""``make demo-digits``: a flow trains and registers a model, a host serves it, requests are
answered.

Runs everything under its own SHIPYARD_HOME (``.demo/digits/``), ends by itself and leaves
nothing running; the last lines say how to bring the host back up to look at what it made.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # examples/demo_support.py

from demo_support import deployed, post, post_refused, shipyard, step  # noqa: E402


def main() -> int:
    home = Path(os.environ.get("SHIPYARD_HOME") or HERE.parents[1] / ".demo" / "digits")
    os.environ["SHIPYARD_HOME"] = str(home)
    step("train: a foreach over hyper-parameters, a join that keeps the best, a registered model")
    subprocess.run([sys.executable, str(HERE / "flow.py"), "run", "--max-workers", "2"], check=True)
    shipyard("show", "DigitsFlow")
    shipyard("models", "alias", "digits", "latest", "prod")
    shipyard("models", "show", "digits")

    with deployed(
        home,
        "the model deployed as a service",
        str(HERE / "service.py") + ":Digits",
        "digits",
        "--replicas",
        "2",
        "--model",
        "digits@prod",
    ) as url:
        step("requests: real handwritten digits from the held-out set")
        from sklearn.datasets import load_digits

        digits = load_digits()
        right = 0
        for i in range(1790, 1797):
            answer = post(f"{url}/digits/predict", {"pixels": digits.data[i].tolist()})
            right += answer["digit"] == digits.target[i]
            print(f"POST /digits/predict  image {i} (a {digits.target[i]}) -> {answer}")
        many = post(f"{url}/digits/classify", {"images": digits.data[:20].tolist()})
        print(f"POST /digits/classify  20 images -> {many}")
        print(
            f"{right}/7 single predictions right; batch agrees with labels on "
            f"{sum(int(a == b) for a, b in zip(many, digits.target[:20], strict=True))}/20"
        )
        refused = post_refused(f"{url}/digits/predict", b'{"pixels": [1, 2]}')
        print(f"POST /digits/predict with 2 pixels -> {refused}")

    step("done: the host has stopped and nothing is left running")
    print("Look at what it made: the runs (shipyard runs, shipyard show DigitsFlow), the model")
    print("(shipyard models show digits) and the service, whose deployment the host restores,")
    print("with its docs at http://127.0.0.1:8000/digits/docs, and the UI at")
    print("http://127.0.0.1:8000/ui. Bring the host and the UI back up with:")
    print(f"  SHIPYARD_HOME={home} .venv/bin/shipyard serve --port 8000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
