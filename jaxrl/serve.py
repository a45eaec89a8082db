"""HTTP JSON serving of an exported policy (``jaxrl.export``): a starlette app run
by uvicorn.

Endpoints:

- ``GET /spec``: the artifact's ``spec.json``.
- ``GET /health``: ``{"status": "ok"}`` once the policy is loaded and compiled.
- ``POST /act`` with ``{"obs": OBS, "seed": S}`` (``seed`` optional, an int in
  ``[0, 2**32)``, default 0) answers ``{"action": ACTION}``. The shape of ``OBS``
  tells what it is: one observation (``obs_shape``) gives one action, a batch
  ``[B, *obs_shape]`` gives a list of ``B`` actions. Discrete actions are ints,
  Box actions (nested) lists of floats. One seed draws the whole batch, exactly as
  ``LoadedPolicy(obs, seed=S)`` does.

Bad requests never reach the policy: a body that is not a JSON object is a 400;
a missing or unknown field, observations of the wrong shape, non-numbers, NaN or
infinity, a bad seed or a batch over ``max_batch_size`` are a 422; a body over
``max_body_bytes`` is a 413, refused from its ``Content-Length`` before it is
read, or as soon as a streamed body passes the limit (no more is read); a body
that stalls for ``read_timeout`` seconds is a 408. Every error answers
``{"error": "<what was expected>"}``. A client that disconnects mid-request is
dropped quietly.

Bounded work per request: the body is parsed and checked, and the policy run, in
starlette's thread pool, off the event loop (a large body does not stall
``/health``). Batches are padded to a power of two (``bucket``; the padding rows
are copies of the first observation and their actions are dropped), so the
policy compiles for at most ``log2(max_batch_size) + 1`` batch sizes, once each;
a batch answers exactly what ``LoadedPolicy(obs, seed=S)`` answers, since every
row's draw depends on its index, not on the batch size (jax's partitionable
threefry). The batch of one is compiled when the app is made.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import tyro
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jaxrl.export import load_policy

FIELDS = ("obs", "seed")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def bucket(n: int, max_batch_size: int) -> int:
    """The batch size ``n`` observations are padded to: the next power of two, at most
    ``max_batch_size``."""
    return min(1 << (n - 1).bit_length(), max_batch_size)


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, refused (``_TooLarge``) as soon as it passes ``limit`` bytes; a chunk
    that takes over ``timeout`` seconds to arrive raises ``TimeoutError``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    parts, size = [], 0
    stream = request.stream().__aiter__()
    while True:
        try:
            part = await asyncio.wait_for(stream.__anext__(), timeout)
        except StopAsyncIteration:
            return b"".join(parts)
        size += len(part)
        if size > limit:
            raise _TooLarge
        parts.append(part)


def make_app(
    artifact_path: str | os.PathLike,
    *,
    max_batch_size: int = 1024,
    max_body_bytes: int = 16 * 2**20,
    read_timeout: float = 30.0,
) -> Starlette:
    """The app serving the policy at ``artifact_path`` (loaded and compiled now).

    Args:
        artifact_path: a directory written by ``jaxrl.export``.
        max_batch_size: the most observations one request may hold.
        max_body_bytes: the largest request body accepted.
        read_timeout: seconds a request body may stall before a 408.
    """
    policy = load_policy(artifact_path)
    policy.warm()
    shape = policy.obs_shape
    usage = (
        f'expected {{"obs": <observation of shape {shape}, or a batch of shape (B, '
        f'{", ".join(map(str, shape))})>, "seed": <optional int>}}'
    )

    async def spec(request: Request) -> JSONResponse:
        return JSONResponse(policy.spec)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    def answer(body: bytes) -> JSONResponse:
        """Parse, check and act (in the thread pool: nothing here runs on the loop)."""
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as e:
            return _error(400, f"request body is not valid JSON ({e}); {usage}")
        if not isinstance(payload, dict):
            return _error(400, f"request body must be a JSON object; {usage}")
        if "obs" not in payload:
            return _error(422, f'missing field "obs"; {usage}')
        unknown = sorted(set(payload) - set(FIELDS))
        if unknown:
            return _error(422, f"unknown fields {unknown}; {usage}")
        try:
            obs, single = policy.check_obs(payload["obs"])
            key_data = policy.key_data(seed=payload.get("seed", 0))
        except (ValueError, TypeError, RecursionError) as e:
            return _error(422, f"{e}; {usage}")
        n = len(obs)
        if n > max_batch_size:
            return _error(422, f"batch of {n} observations over max {max_batch_size}")
        padded = np.concatenate([obs, np.repeat(obs[:1], bucket(n, max_batch_size) - n, 0)])
        action = policy.act_batch(padded, key_data)[:n]
        return JSONResponse({"action": (action[0] if single else action).tolist()})

    async def act(request: Request) -> JSONResponse:
        try:
            body = await _read_body(request, max_body_bytes, read_timeout)
        except _TooLarge:
            return _error(413, f"request body over {max_body_bytes} bytes")
        except TimeoutError:
            return _error(408, f"request body stalled for over {read_timeout:g} s")
        except ClientDisconnect:  # nobody will read it; answered so nothing is logged
            return _error(400, "the client disconnected before the body was complete")
        return await run_in_threadpool(answer, body)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(exc).__name__}")

    app = Starlette(
        routes=[
            Route("/spec", spec, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/act", act, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.policy = policy
    return app


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
"""uvicorn's log levels."""


def serve(
    artifact_path: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    max_batch_size: int = 1024,
    log_level: str = "info",
) -> None:
    """Serve the policy at ``artifact_path`` with uvicorn until interrupted. Bad
    ``port``, ``max_batch_size`` or ``log_level`` values are refused before anything
    loads (an out-of-range port used to bind a random one while logging the given)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port={port!r} is not allowed; it must be an int in [1, 65535]")
    if (
        isinstance(max_batch_size, bool)
        or not isinstance(max_batch_size, int)
        or max_batch_size < 1
    ):
        raise ValueError(
            f"max_batch_size={max_batch_size!r} is not allowed; it must be an int >= 1"
        )
    if log_level not in LOG_LEVELS:
        raise ValueError(f"log_level={log_level!r} is not allowed; it must be one of {LOG_LEVELS}")
    import uvicorn

    app = make_app(artifact_path, max_batch_size=max_batch_size)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


@dataclasses.dataclass(frozen=True)
class ServeArgs:
    """Serve an exported policy over HTTP: GET /spec, GET /health, POST /act."""

    artifact: tyro.conf.Positional[Path]
    """Artifact directory written by jaxrl.export (spec.json, policy.jaxexport)."""
    host: str = "127.0.0.1"
    """Interface to listen on (127.0.0.1: this machine only)."""
    port: int = 8000
    """TCP port."""
    max_batch_size: int = 1024
    """Most observations one request may hold."""
    log_level: str = "info"
    """uvicorn's log level."""


def main(argv: list[str] | None = None) -> None:
    """``python -m jaxrl.serve ARTIFACT [--host H] [--port P]``."""
    args = tyro.cli(ServeArgs, args=argv)
    serve(
        args.artifact,
        args.host,
        args.port,
        max_batch_size=args.max_batch_size,
        log_level=args.log_level,
    )


if __name__ == "__main__":
    main()
