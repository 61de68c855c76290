"""The iris model as a plain Ray Serve application, called through Ray Serve's own HTTP
proxy: ``POST /iris`` with ``{"features": [5.1, 3.5, 1.4, 0.2]}`` answers the class index,
as the other servers of the serving benchmarks do (bench/ray_serving.py runs it)."""

from __future__ import annotations

from iris_model import train
from starlette.requests import Request
from starlette.responses import JSONResponse

from ray import serve


@serve.deployment(name="iris", ray_actor_options={"num_cpus": 1})
class Iris:
    def __init__(self) -> None:
        self.model = train()

    async def __call__(self, request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse(int(self.model.predict([body["features"]])[0]))


app = Iris.bind()
