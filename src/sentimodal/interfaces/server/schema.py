"""The API's request and response bodies, and the OpenAPI text that describes them (the
endpoints read their bodies themselves, so the schema is given to FastAPI explicitly)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

EXPLAIN_HELP = (
    "Add an explanation to each prediction: modality shares, word scores, an image heatmap "
    "(occlusion; one forward pass per word and image cell, bounded by max_explain_passes)."
)


class PostIn(BaseModel):
    """One post: text and/or image (base64 bytes, or a URL when the operator allows it)."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, max_length=256)
    text: str | None = None
    image_base64: str | None = None
    image_url: str | None = None
    labels: list[str] | None = Field(None, description="Free labels (embedding heads only).")
    explain: bool = Field(False, description=EXPLAIN_HELP)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    posts: list[PostIn]
    labels: list[str] | None = Field(None, description="Free labels (embedding heads only).")
    explain: bool = Field(False, description=EXPLAIN_HELP)


class PredictionOut(BaseModel):
    id: str | None = None
    label: str | None
    scores: dict[str, float] | None
    #: what the prediction read: "text+image", or the one modality a fusion fell back to
    modalities: str | None = None
    error: str | None = None
    #: why an input the post gave was not used
    warning: str | None = None
    #: why it got its label (when asked for): ``label``, ``score``, ``modalities``, ``words``,
    #: ``regions``, ``method`` (see :mod:`sentimodal.inference.explanations`)
    explanation: dict[str, Any] | None = None


class BatchOut(BaseModel):
    predictions: list[PredictionOut]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (400, "Malformed request body, JSON nested too deep, or a Host not served"),
        (408, "The body did not arrive in time"),
        (413, "Over a size limit (body, image pixels, text characters or tokens, batch)"),
        (415, "Unsupported content type"),
        (422, "Invalid post"),
        (503, "Not ready, the queue is full, or too many connections"),
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
        "explain": {"type": "boolean"},
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


def body_schema(model: type[BaseModel], multipart: bool) -> dict[str, Any]:
    raw = model.model_json_schema()
    content: dict[str, Any] = {"application/json": {"schema": _inline(raw, raw.get("$defs", {}))}}
    if multipart:
        content["multipart/form-data"] = {"schema": _MULTIPART_SCHEMA}
    return {"requestBody": {"required": True, "content": content}}
