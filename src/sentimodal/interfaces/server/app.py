"""The HTTP API: FastAPI app around one served model, with limits, micro-batching and a log.

Endpoints: ``POST /v1/predict`` (one post, JSON or multipart), ``POST /v1/predict/batch``,
``GET /v1/model``, ``GET /health`` (the process answers), ``GET /ready`` (the model is loaded
and requests are accepted), ``GET /`` (a page to try the model), ``/docs`` (OpenAPI).

Every error is JSON ``{"error": {"code", "message"}}`` with its status: 400 malformed body,
413 over a size bound (body, image pixels, text, batch), 415 wrong content type, 422 invalid
post (bad image, empty post, unknown labels), 503 not ready or queue full, 504 timeout.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from importlib.resources import files
from itertools import count
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from sentimodal.errors import UserInputError
from sentimodal.features.engine import reuse_freed_memory
from sentimodal.inference.posts import Prediction
from sentimodal.interfaces.server.batcher import MicroBatcher, QueueFull
from sentimodal.interfaces.server.model import ImageRejected, ServedModel, decode_upload
from sentimodal.interfaces.server.settings import ServerSettings

access_log = logging.getLogger("sentimodal.server.access")
#: an oversized body is read and dropped up to this many times the bound (see Guard)
_DRAIN_FACTOR = 4
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None):
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


# ----------------------------------------------------------------------------- API schema


class PostIn(BaseModel):
    """One post: text and/or image (base64 bytes, or a URL when the operator allows it)."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, max_length=256)
    text: str | None = None
    image_base64: str | None = None
    image_url: str | None = None
    labels: list[str] | None = Field(None, description="Free labels (embedding heads only).")


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    posts: list[PostIn]
    labels: list[str] | None = Field(None, description="Free labels (embedding heads only).")


class PredictionOut(BaseModel):
    id: str | None = None
    label: str | None
    scores: dict[str, float] | None
    #: what the prediction read: "text+image", or the one modality a fusion fell back to
    modalities: str | None = None
    error: str | None = None
    #: why an input the post gave was not used
    warning: str | None = None


class BatchOut(BaseModel):
    predictions: list[PredictionOut]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (400, "Malformed request body"),
        (413, "Over a size limit (body, image pixels, text, batch)"),
        (415, "Unsupported content type"),
        (422, "Invalid post"),
        (503, "Not ready, or the queue is full"),
        (504, "Timed out"),
    )
}

_MULTIPART_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string"},
        "image": {"type": "string", "format": "binary"},
        "labels": {"type": "string", "description": "comma-separated free labels"},
        "id": {"type": "string"},
    },
}


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """The schema with its local ``#/$defs/X`` references replaced by their definitions (an
    operation's inline schema cannot point into a ``$defs`` of its own)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(item, defs) for item in schema]
    return schema


def _body_schema(model: type[BaseModel], multipart: bool) -> dict[str, Any]:
    raw = model.model_json_schema()
    content: dict[str, Any] = {"application/json": {"schema": _inline(raw, raw.get("$defs", {}))}}
    if multipart:
        content["multipart/form-data"] = {"schema": _MULTIPART_SCHEMA}
    return {"requestBody": {"required": True, "content": content}}


# ----------------------------------------------------------------------------- middleware


class Guard:
    """Pure ASGI middleware: request id, body size bound, one JSON access-log line per request.

    The body is read here up to ``max_bytes`` (a larger declared or streamed body is refused
    with 413 before the app sees any of it), then replayed to the app.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        note: dict[str, Any] = {"batch_size": None}
        scope["sentimodal"] = note
        status = 500

        async def send_logged(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            body = await self._read_body(headers, receive)
            if body is None:
                response = _error(
                    413,
                    "body_too_large",
                    f"request body over {self.max_bytes:,} bytes",
                    headers={"connection": "close"},
                )
                await response(scope, receive, send_logged)
                return
            replayed = False

            async def replay() -> dict:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, send_logged)
        finally:
            access_log.info(
                json.dumps(
                    {
                        "id": request_id,
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status,
                        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                        "batch_size": note["batch_size"],
                    }
                )
            )

    async def _read_body(self, headers: dict[bytes, bytes], receive: Callable) -> bytes | None:
        """The body, or None when it is over the bound. An oversized body is still read (and
        dropped) up to a few times the bound, so that the client, still sending, receives the
        413 rather than a reset connection; beyond that the connection is just closed."""
        declared = headers.get(b"content-length")
        drain_limit = _DRAIN_FACTOR * self.max_bytes
        with contextlib.suppress(ValueError):
            if declared is not None and int(declared) > drain_limit:
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= self.max_bytes:
                chunks.append(chunk)
            elif size > drain_limit:
                return None
            if not message.get("more_body", False):
                break
        return b"".join(chunks) if size <= self.max_bytes else None


# ----------------------------------------------------------------------------- the app


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
            self.load_error = f"{type(exc).__name__}: {exc}"
            logging.getLogger("sentimodal.server").error("model failed to load: %s", exc)
        finally:
            self.loaded.set()

    def run(self, key: Any, batch: list[Any]) -> list[Any]:
        assert self.model is not None
        return self.model.run(key, batch)


def create_app(
    loader: Callable[[], ServedModel], settings: ServerSettings | None = None
) -> FastAPI:
    """The API around the model ``loader`` returns (called once, in a background thread)."""
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
    )
    app.state.sentimodal = state
    app.add_middleware(Guard, max_bytes=settings.max_request_bytes)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"retry-after": "1"} if exc.status == 503 else None
        return _error(exc.status, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", _first_error(exc.errors()))

    @app.get("/health", summary="The process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="The model is loaded and requests are accepted", responses=_ERRORS)
    async def ready() -> JSONResponse:
        if state.load_error is not None:
            return _error(503, "model_failed", state.load_error)
        if state.model is None or not state.accepting:
            return _error(503, "not_ready", "the model is loading or the server is stopping")
        return JSONResponse({"status": "ready"})

    @app.get("/v1/model", summary="Labels, encoders, metrics and versions", responses=_ERRORS)
    async def model_info() -> dict[str, Any]:
        model = _ready_model(state)
        info = model.info()
        info["limits"] = settings.to_dict()
        return info

    @app.post(
        "/v1/predict",
        summary="Predict one post (JSON or multipart)",
        response_model=PredictionOut,
        responses=_ERRORS,
        openapi_extra=_body_schema(PostIn, multipart=True),
    )
    async def predict(request: Request) -> PredictionOut:
        model = _ready_model(state)
        post = await _read_post(request, settings)
        key = await _labels_key(model, post.labels, settings)
        rows = [await _row(model, state, post, settings)]
        (prediction,) = await _submit(request, state, rows, key)
        if prediction.error is not None:
            raise ApiError(422, "unpredictable_post", prediction.error)
        return _out(prediction, post.id)

    @app.post(
        "/v1/predict/batch",
        summary="Predict several posts; a bad post gets an error and the others go on",
        response_model=BatchOut,
        responses=_ERRORS,
        openapi_extra=_body_schema(BatchIn, multipart=False),
    )
    async def predict_batch(request: Request) -> BatchOut:
        model = _ready_model(state)
        batch = _parse_json(await _json_body(request), BatchIn)
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
        key = await _labels_key(model, batch.labels, settings)
        # the posts decode side by side in the thread pool; one bad post fails alone
        decoded = await asyncio.gather(
            *(_row(model, state, post, settings) for post in batch.posts), return_exceptions=True
        )
        rows, failed = [], {}
        for i, row in enumerate(decoded):
            if isinstance(row, ApiError) and row.code != "text_too_long":
                failed[i] = row.message
                rows.append(None)
            elif isinstance(row, BaseException):
                raise row
            else:
                rows.append(row)
        todo = [row for row in rows if row is not None]
        done = iter(await _submit(request, state, todo, key) if todo else [])
        out = []
        for i, post in enumerate(batch.posts):
            if i in failed:
                out.append(PredictionOut(id=post.id, label=None, scores=None, error=failed[i]))
            else:
                out.append(_out(next(done), post.id))
        return BatchOut(predictions=out)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = files("sentimodal.interfaces.server").joinpath("page.html").read_text("utf-8")
        return HTMLResponse(html, headers={"cache-control": "no-store"})

    return app


def _first_error(errors: Any) -> str:
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))


def _ready_model(state: ServerState) -> ServedModel:
    if state.model is None or not state.accepting:
        raise ApiError(503, "not_ready", "the model is loading or the server is stopping")
    return state.model


async def _json_body(request: Request) -> Any:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "unsupported_media_type", "send application/json")
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not JSON: {exc}") from None


def _parse_json(data: Any, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", _first_error(exc.errors())) from None


async def _read_post(request: Request, settings: ServerSettings) -> PostIn:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return _parse_json(await _json_body(request), PostIn)
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise ApiError(
            415, "unsupported_media_type", "send application/json or multipart/form-data"
        )
    try:
        form = await request.form(max_files=1, max_fields=8)
    except Exception as exc:  # python-multipart's parse errors have no common base
        raise ApiError(400, "malformed_multipart", f"cannot read the form: {exc}") from None
    image = form.get("image")
    image_b64 = None
    if isinstance(image, UploadFile):
        data = await image.read()
        image_b64 = base64.b64encode(data).decode("ascii") if data else None
    elif isinstance(image, str) and image:
        raise ApiError(422, "invalid_request", "image: upload a file")
    labels = form.get("labels")
    fields = {
        "id": form.get("id") if isinstance(form.get("id"), str) else None,
        "text": form.get("text") if isinstance(form.get("text"), str) else None,
        "image_base64": image_b64,
        "labels": [x for x in labels.split(",") if x.strip()]
        if isinstance(labels, str) and labels.strip()
        else None,
    }
    return _parse_json(fields, PostIn)


async def _labels_key(
    model: ServedModel, labels: list[str] | None, settings: ServerSettings
) -> tuple[str, ...] | None:
    if labels is None:
        return None
    if len(labels) > settings.max_labels:
        raise ApiError(413, "too_many_labels", f"at most {settings.max_labels} labels")
    try:
        return await run_in_threadpool(model.label_space, labels)
    except UserInputError as exc:
        raise ApiError(422, "unknown_labels", str(exc)) from None


async def _row(
    model: ServedModel, state: ServerState, post: PostIn, settings: ServerSettings
) -> dict[str, Any]:
    """One post as a loaded row (image decoded under the pixel bound, in a worker thread)."""
    text = post.text or ""
    if len(text) > settings.max_text_chars:
        raise ApiError(
            413,
            "text_too_long",
            f"the text has {len(text):,} characters, more than the {settings.max_text_chars:,} "
            f"allowed",
        )
    image: Any = ""
    if post.image_base64 and post.image_url:
        raise ApiError(422, "invalid_request", "give image_base64 or image_url, not both")
    if post.image_base64:
        try:
            data = base64.b64decode(post.image_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(422, "bad_image", "image_base64 is not valid base64") from None
        try:
            image = await run_in_threadpool(
                decode_upload, data, settings.max_image_pixels, model.image_draft
            )
        except ImageRejected as exc:
            if exc.too_large:
                raise ApiError(413, "image_too_large", str(exc)) from None
            raise ApiError(422, "bad_image", str(exc)) from None
    elif post.image_url:
        if not settings.allow_image_urls:
            raise ApiError(
                422, "image_urls_disabled", "this server does not fetch image URLs: send the bytes"
            )
        image = post.image_url
    return {"position": next(state.positions), "id": post.id or "", "text": text, "image": image}


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


def _out(prediction: Prediction, post_id: str | None) -> PredictionOut:
    return PredictionOut(
        id=post_id,
        label=prediction.label,
        scores=prediction.scores if prediction.error is None else None,
        modalities=prediction.modalities,
        error=prediction.error,
        warning=prediction.warning,
    )
