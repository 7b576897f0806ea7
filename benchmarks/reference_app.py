"""The bare reference the service is measured against: minimal FastAPI endpoints that parse with
orjson, apply the same NumPy arithmetic and answer with orjson, and nothing else."""

from __future__ import annotations

import numpy as np
import orjson
from fastapi import FastAPI, Request, Response


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/activations/sigmoid")
    async def sigmoid(request: Request) -> Response:
        x = np.asarray(orjson.loads(await request.body())["x"], dtype=np.float64)
        with np.errstate(over="ignore"):
            y = 1.0 / (1.0 + np.exp(-x))
        return Response(
            orjson.dumps({"y": y}, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json"
        )

    @app.post("/v1/gradients")
    async def gradients(request: Request) -> Response:
        body = orjson.loads(await request.body())
        X = np.asarray(body["X"], dtype=np.float64)
        y = np.asarray(body["y"], dtype=np.float64)
        w = np.asarray(body["model"]["weights"], dtype=np.float64)
        b = float(body["model"]["bias"])
        with np.errstate(over="ignore"):
            p = 1.0 / (1.0 + np.exp(-(X @ w + b)))
        r = p - y
        loss = -np.mean(np.log(np.clip(np.where(y == 1, p, 1 - p), 1e-16, None)))
        out = {"loss": float(loss), "gradients": {"weights": X.T @ r / len(y), "bias": float(r.mean())}}
        return Response(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    return app
