"""The bare references the service is measured against: minimal FastAPI endpoints that parse with
orjson, apply the same NumPy arithmetic and answer with orjson, and nothing else; and a bare Starlette
endpoint that loads and saves ``.npy`` bodies."""

from __future__ import annotations

import io

import numpy as np
import orjson
from fastapi import FastAPI, Request, Response
from starlette.applications import Starlette
from starlette.routing import Route

from engine.activations import ACTIVATIONS


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


def create_binary_app() -> Starlette:
    """The bare binary reference: a Starlette endpoint that loads an ``.npy`` body with ``np.load``,
    applies the engine's own sigmoid (the same arithmetic as the service) and answers ``np.save``'s
    bytes; ``/echo`` only loads and saves; ``/bytes`` answers the body as it came (the transport alone)."""

    async def sigmoid(request: Request) -> Response:
        x = np.load(io.BytesIO(await request.body()), allow_pickle=False)
        out = io.BytesIO()
        np.save(out, ACTIVATIONS["sigmoid"].function(x), allow_pickle=False)
        return Response(out.getvalue(), media_type="application/x-npy")

    async def echo(request: Request) -> Response:
        x = np.load(io.BytesIO(await request.body()), allow_pickle=False)
        out = io.BytesIO()
        np.save(out, x, allow_pickle=False)
        return Response(out.getvalue(), media_type="application/x-npy")

    async def echo_bytes(request: Request) -> Response:
        return Response(await request.body(), media_type="application/x-npy")

    async def ready(request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/activations/sigmoid", sigmoid, methods=["POST"]),
            Route("/echo", echo, methods=["POST"]),
            Route("/bytes", echo_bytes, methods=["POST"]),
            Route("/openapi.json", ready),
        ]
    )
