"""The practical limit: a bare Starlette app that calls the model in-process.

    uvicorn bare_app:app --app-dir bench/serve --loop uvloop --http httptools --workers 1

``POST /predict`` with ``{"features": [5.1, 3.5, 1.4, 0.2]}`` answers the class index. No
validation beyond what ``json.loads`` and scikit-learn do: this is the floor, not a service.
"""

from __future__ import annotations

import json

from iris_model import train
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MODEL = train()


async def predict(request: Request) -> Response:
    features = json.loads(await request.body())["features"]
    label = int(MODEL.predict([features])[0])
    return Response(str(label), media_type="application/json")


app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
