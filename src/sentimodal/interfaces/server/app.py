"""The HTTP API: FastAPI app around one served model, with limits, micro-batching and a log.

Endpoints: ``POST /v1/predict`` (one post, JSON or multipart), ``POST /v1/predict/batch``,
``GET /v1/model``, ``GET /health`` (the process answers), ``GET /ready`` (the model is loaded
and requests are accepted), ``GET /`` (a page to try the model), ``/docs`` and ``/redoc`` (the
OpenAPI document ``/openapi.json`` in Swagger UI and ReDoc, served offline: ``apidocs.py``).

Every error is JSON ``{"error": {"code", "message"}}`` with its status: 400 malformed body
(or nested too deep, or a foreign ``Host``), 404/405 no such route or method, 408 body too
slow, 413 over a size bound (body, image pixels, text characters or tokens, batch), 415 wrong
content type, 422 invalid post (bad image, empty post, unknown labels), 503 not ready, queue
full or too many connections, 504 timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from importlib.resources import files
from itertools import count
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from sentimodal.features.engine import reuse_freed_memory
from sentimodal.inference.posts import Prediction
from sentimodal.interfaces.server.apidocs import add_api_docs, inline_hashes
from sentimodal.interfaces.server.batcher import MicroBatcher, QueueFull
from sentimodal.interfaces.server.connections import quiet_file_limit
from sentimodal.interfaces.server.errors import ApiError, error_response, first_error
from sentimodal.interfaces.server.guard import Guard
from sentimodal.interfaces.server.hosts import HostCheck
from sentimodal.interfaces.server.model import ServedModel
from sentimodal.interfaces.server.posts import (
    RequestImages,
    check_explain_cost,
    check_text_cost,
    json_body,
    labels_key,
    loaded_row,
    parse_json,
    read_post,
)
from sentimodal.interfaces.server.schema import (
    ERROR_RESPONSES,
    BatchIn,
    BatchOut,
    PostIn,
    PredictionOut,
    body_schema,
)
from sentimodal.interfaces.server.settings import ServerSettings


class ServerState:
    """The model (loaded in the background, so /health answers during a cold start) and the
    batcher."""

    def __init__(self, loader: Callable[[], ServedModel], settings: ServerSettings) -> None:
        self.loader = loader
        self.settings = settings
        self.model: ServedModel | None = None
        self.batcher: MicroBatcher | None = None
        self.load_error: str | None = None
        self.accepting = False
        self.positions = count()
        self.loaded = threading.Event()

    def load(self) -> None:
        try:
            self.model = self.loader()
        except Exception as exc:  # reported by /ready; the process keeps answering /health
            # the details (paths on the server) go to the operator's log, not to clients
            self.load_error = f"the model failed to load ({type(exc).__name__}): see the server log"
            logging.getLogger("sentimodal.server").error("model failed to load: %s", exc)
        finally:
            self.loaded.set()

    def run(self, key: Any, batch: list[Any]) -> list[Any]:
        assert self.model is not None
        return self.model.run(key, batch)


#: what FastAPI's own errors (no such route, wrong method) are called in the error shape
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def create_app(
    loader: Callable[[], ServedModel],
    settings: ServerSettings | None = None,
    host: str = "127.0.0.1",
) -> FastAPI:
    """The API around the model ``loader`` returns (called once, in a background thread);
    ``host`` is the address it is served on (requests must name it, see ``hosts.py``)."""
    settings = settings or ServerSettings()
    state = ServerState(loader, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.batcher = MicroBatcher(
            state.run,
            max_batch=settings.max_micro_batch,
            window_s=settings.batch_window_ms / 1000,
            queue_size=settings.queue_size,
        )
        state.batcher.start()
        quiet_file_limit(asyncio.get_running_loop())
        loading = asyncio.get_running_loop().run_in_executor(None, state.load)
        state.accepting = True
        # large activations (EfficientNet at batch 32) reuse freed heap memory instead of
        # fresh zeroed pages per batch: measured 8x on the torch batch rate (see engine.py)
        with reuse_freed_memory():
            try:
                yield
            finally:
                state.accepting = False
                await loading
                await state.batcher.stop()

    app = FastAPI(
        title="sentimodal",
        version="1",
        summary="Multimodal (image + text) sentiment of social-media posts.",
        lifespan=lifespan,
        docs_url=None,  # served offline by add_api_docs
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.sentimodal = state
    page_html = files("sentimodal.interfaces.server").joinpath("page.html").read_text("utf-8")
    app.add_middleware(
        Guard,
        max_bytes=settings.max_request_bytes,
        body_timeout_s=settings.body_timeout_s,
        hosts=HostCheck(host, settings.allowed_hosts),
        page_csps={"/": _page_csp(page_html), **add_api_docs(app)},
    )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"retry-after": "1"} if exc.status == 503 else None
        return error_response(exc.status, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", first_error(exc.errors()))

    @app.get("/health", summary="The process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/ready", summary="The model is loaded and requests are accepted", responses=ERROR_RESPONSES
    )
    async def ready() -> JSONResponse:
        if state.load_error is not None:
            return error_response(503, "model_failed", state.load_error)
        if state.model is None or not state.accepting:
            return error_response(
                503, "not_ready", "the model is loading or the server is stopping"
            )
        return JSONResponse({"status": "ready"})

    @app.get(
        "/v1/model", summary="Labels, encoders, metrics and versions", responses=ERROR_RESPONSES
    )
    async def model_info() -> dict[str, Any]:
        model = _ready_model(state)
        info = model.info()
        info["limits"] = settings.to_dict()
        return info

    @app.post(
        "/v1/predict",
        summary="Predict one post (JSON or multipart)",
        response_model=PredictionOut,
        responses=ERROR_RESPONSES,
        openapi_extra=body_schema(PostIn, multipart=True),
    )
    async def predict(request: Request) -> PredictionOut:
        model = _ready_model(state)
        post = await read_post(request, settings)
        await check_text_cost([post], settings)
        key = await labels_key(model, post.labels, settings)
        images = RequestImages.start(settings)
        rows = [await loaded_row(model, state.positions, post, settings, images)]
        if post.explain:
            check_explain_cost(model, rows, key, settings)
        predictions = await _submit(request, state, rows, key)
        if predictions[0].error is not None:
            raise ApiError(422, "unpredictable_post", predictions[0].error)
        if post.explain:
            predictions = await _explained(state, rows, predictions)
        return _out(predictions[0], post.id)

    @app.post(
        "/v1/predict/batch",
        summary="Predict several posts; a bad post gets an error and the others go on",
        response_model=BatchOut,
        responses=ERROR_RESPONSES,
        openapi_extra=body_schema(BatchIn, multipart=False),
    )
    async def predict_batch(request: Request) -> BatchOut:
        model = _ready_model(state)
        batch = parse_json(await json_body(request, settings.max_json_depth), BatchIn)
        if len(batch.posts) > settings.max_batch_posts:
            raise ApiError(
                413,
                "batch_too_large",
                f"{len(batch.posts)} posts, more than the {settings.max_batch_posts} allowed",
            )
        if not batch.posts:
            return BatchOut(predictions=[])
        if any(post.labels is not None for post in batch.posts):
            raise ApiError(422, "invalid_request", "give labels once for the batch, not per post")
        await check_text_cost(batch.posts, settings)
        key = await labels_key(model, batch.labels, settings)
        # the posts decode side by side in the thread pool; one bad post fails alone
        images = RequestImages.start(settings)
        decoded = await asyncio.gather(
            *(loaded_row(model, state.positions, post, settings, images) for post in batch.posts),
            return_exceptions=True,
        )
        rows, failed = [], {}
        for i, row in enumerate(decoded):
            if isinstance(row, ApiError):
                failed[i] = row.message
                rows.append(None)
            elif isinstance(row, BaseException):
                raise row
            else:
                rows.append(row)
        todo = [row for row in rows if row is not None]
        if batch.explain:
            check_explain_cost(model, todo, key, settings)
        predicted = await _submit(request, state, todo, key) if todo else []
        if batch.explain and todo:
            predicted = await _explained(state, todo, predicted)
        done = iter(predicted)
        out = []
        for i, post in enumerate(batch.posts):
            if i in failed:
                out.append(PredictionOut(id=post.id, label=None, scores=None, error=failed[i]))
            else:
                out.append(_out(next(done), post.id))
        return BatchOut(predictions=out)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html, headers={"cache-control": "no-store"})

    return app


def _page_csp(html: str) -> bytes:
    """The try-it page's Content-Security-Policy: its own inline script and style (by hash)
    and nothing else, fetches to this server only, image previews as data: URLs."""

    def hashes(tag: str) -> str:
        return " ".join(inline_hashes(html, tag)) or "'none'"

    return (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ).encode()


def _ready_model(state: ServerState) -> ServedModel:
    if state.model is None or not state.accepting:
        raise ApiError(503, "not_ready", "the model is loading or the server is stopping")
    return state.model


async def _submit(
    request: Request, state: ServerState, rows: list[dict[str, Any]], key: Any
) -> list[Prediction]:
    model, batcher = state.model, state.batcher
    assert model is not None and batcher is not None
    loaded = await run_in_threadpool(model.load_posts, rows)
    try:
        predictions, batch_size = await asyncio.wait_for(
            batcher.submit(loaded, size=len(rows), key=key), state.settings.request_timeout_s
        )
    except QueueFull:
        raise ApiError(503, "queue_full", "too many requests waiting: retry shortly") from None
    except TimeoutError:
        raise ApiError(
            504, "timeout", f"no answer within {state.settings.request_timeout_s:g} s"
        ) from None
    request.scope["sentimodal"]["batch_size"] = batch_size
    return predictions


async def _explained(
    state: ServerState, rows: list[dict[str, Any]], predictions: list[Prediction]
) -> list[Prediction]:
    """The predictions with their explanations, computed in a worker thread within the
    request's time (the model's forward passes are safe to run beside the batcher's)."""
    model = state.model
    assert model is not None
    try:
        return await asyncio.wait_for(
            run_in_threadpool(model.explain, rows, predictions, state.settings),
            state.settings.request_timeout_s,
        )
    except TimeoutError:
        raise ApiError(
            504, "timeout", f"no explanation within {state.settings.request_timeout_s:g} s"
        ) from None


def _out(prediction: Prediction, post_id: str | None) -> PredictionOut:
    return PredictionOut(
        id=post_id,
        label=prediction.label,
        scores=prediction.scores if prediction.error is None else None,
        modalities=prediction.modalities,
        error=prediction.error,
        warning=prediction.warning,
        explanation=prediction.explanation,
    )
