"""A request's posts as the model reads them: the JSON or multipart body parsed and checked
(its nesting before parsing), the texts' cost bounded in tokens, free labels turned into a
label space, and each post's image decoded under the pixel bound."""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from sentimodal.errors import UserInputError
from sentimodal.features.text_encoders.tokens import tokenize
from sentimodal.inference.explanations import explanation_cost
from sentimodal.interfaces.server.errors import ApiError, first_error
from sentimodal.interfaces.server.model import ImageRejected, ServedModel, decode_upload
from sentimodal.interfaces.server.schema import PostIn
from sentimodal.interfaces.server.settings import ServerSettings
from sentimodal.sources.pixels import BatchPixels, PixelBudget

#: a JSON string (escapes included), whose brackets do not nest anything
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


def json_depth(body: bytes) -> int:
    """How deep the brackets of a JSON text nest, by a linear scan (no parsing, no
    recursion), so that a body nested 10^5 deep is refused before a parser recurses into it."""
    steps = _OPEN[np.frombuffer(_JSON_STRING.sub(b"", body), dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


async def json_body(request: Request, max_depth: int) -> Any:
    """The body as JSON data (415 unless it says it is JSON, 400 when it is not or nests
    deeper than ``max_depth``)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, "unsupported_media_type", "send application/json")
    body = await request.body()
    depth = await run_in_threadpool(json_depth, body)
    if depth > max_depth:
        raise ApiError(
            400, "malformed_json", f"the JSON nests {depth} deep, more than the {max_depth} allowed"
        )
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not JSON: {exc}") from None


def parse_json(data: Any, model: type[BaseModel]) -> Any:
    """JSON data as a body model; its first problem is a 422."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", first_error(exc.errors())) from None


async def read_post(request: Request, settings: ServerSettings) -> PostIn:
    """One post from a JSON body or a form (an uploaded image becomes its base64 bytes)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return parse_json(await json_body(request, settings.max_json_depth), PostIn)
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
    explain = form.get("explain")
    fields = {
        "explain": isinstance(explain, str) and explain.strip().lower() in ("1", "true", "on"),
        "id": form.get("id") if isinstance(form.get("id"), str) else None,
        "text": form.get("text") if isinstance(form.get("text"), str) else None,
        "image_base64": image_b64,
        "labels": [x for x in labels.split(",") if x.strip()]
        if isinstance(labels, str) and labels.strip()
        else None,
    }
    return parse_json(fields, PostIn)


async def labels_key(
    model: ServedModel, labels: list[str] | None, settings: ServerSettings
) -> tuple[str, ...] | None:
    """The batcher's key for free labels (None: the model's own labels), checked by the
    model; labels it cannot score are a 422."""
    if labels is None:
        return None
    if len(labels) > settings.max_labels:
        raise ApiError(413, "too_many_labels", f"at most {settings.max_labels} labels")
    try:
        return await run_in_threadpool(model.label_space, labels)
    except UserInputError as exc:
        raise ApiError(422, "unknown_labels", str(exc)) from None


async def check_text_cost(posts: Sequence[PostIn], settings: ServerSettings) -> None:
    """Refuse (413) a request whose texts would cost the encoders too much, before any
    work: each text in characters and in tokens (what encoders pay for: an emoji is one
    character and one token, but VADER's cost grows with the square of the tokens), and the
    tokens of the whole request."""
    texts = [post.text or "" for post in posts]
    for text in texts:
        if len(text) > settings.max_text_chars:
            raise ApiError(
                413,
                "text_too_long",
                f"the text has {len(text):,} characters, more than the "
                f"{settings.max_text_chars:,} allowed",
            )
    counts = await run_in_threadpool(lambda: [len(tokenize(text)) for text in texts])
    for count in counts:
        if count > settings.max_text_tokens:
            raise ApiError(
                413,
                "text_too_long",
                f"the text has {count:,} tokens, more than the {settings.max_text_tokens:,} "
                f"allowed",
            )
    if sum(counts) > settings.max_request_tokens:
        raise ApiError(
            413,
            "too_many_tokens",
            f"the texts have {sum(counts):,} tokens in all, more than the "
            f"{settings.max_request_tokens:,} allowed in one request",
        )


@dataclass
class RequestImages:
    """What one request's images may decode to, together, and until when."""

    budget: PixelBudget
    pixels: BatchPixels
    deadline: float

    @classmethod
    def start(cls, settings: ServerSettings) -> RequestImages:
        """The allowance of a request arriving now (its deadline is the request timeout)."""
        budget = settings.pixel_budget()
        return cls(
            budget,
            BatchPixels(budget.max_batch_pixels),
            time.monotonic() + settings.request_timeout_s,
        )


async def loaded_row(
    model: ServedModel,
    positions: Iterator[int],
    post: PostIn,
    settings: ServerSettings,
    images: RequestImages,
) -> dict[str, Any]:
    """One post as a loaded row (image decoded under the request's pixel allowance, in a
    worker thread); its text was checked by :func:`check_text_cost`."""
    text = post.text or ""
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
                decode_upload,
                data,
                images.budget,
                model.image_draft,
                images.pixels,
                images.deadline,
            )
        except ImageRejected as exc:
            if exc.late:
                raise ApiError(504, "timeout", str(exc)) from None
            if exc.too_large:
                raise ApiError(413, "image_too_large", str(exc)) from None
            raise ApiError(422, "bad_image", str(exc)) from None
    elif post.image_url:
        if not settings.allow_image_urls:
            raise ApiError(
                422, "image_urls_disabled", "this server does not fetch image URLs: send the bytes"
            )
        image = post.image_url
    return {"position": next(positions), "id": post.id or "", "text": text, "image": image}


def check_explain_cost(
    model: ServedModel, rows: Sequence[dict[str, Any]], key: Any, settings: ServerSettings
) -> None:
    """Refuse, before any work, explanations that would cost more forward passes than
    ``max_explain_passes`` (413), or of free labels (422: the label space is swapped in the
    model thread only)."""
    if key is not None:
        raise ApiError(422, "invalid_request", "explanations are of the model's own labels")
    explain = model.explain_settings(settings)
    cost = sum(explanation_cost(row, model.work, explain) for row in rows)
    if cost > settings.max_explain_passes:
        raise ApiError(
            413,
            "explanation_too_costly",
            f"explaining these posts costs {cost} forward passes, more than the "
            f"{settings.max_explain_passes} allowed (fewer posts or words)",
        )
