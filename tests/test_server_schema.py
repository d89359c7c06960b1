"""Property-based tests of the HTTP API against its own OpenAPI schema (schemathesis), run
in-process on the ASGI app (no sockets), bounded in examples per operation: every answer is a
documented status with a documented body, and every error is the ``{"error": {...}}`` shape,
never a 5xx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi

from sentimodal.interfaces.server import ServerSettings, create_app
from sentimodal.interfaces.server.model import ServedModel
from server_fixtures import train_fusion

EXAMPLES = 25


@schemathesis.check
def error_shape(ctx: Any, response: Any, case: schemathesis.Case) -> None:
    """A refused request says why in the one documented shape."""
    if response.status_code < 400:
        return
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert all(isinstance(v, str) and v for v in body["error"].values()), body


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    model = ServedModel.load(train_fusion(tmp_path_factory.mktemp("schema") / "fusion"))
    limits = ServerSettings(
        max_request_bytes=256 * 1024,
        max_batch_posts=4,
        batch_window_ms=1,
        allowed_hosts=[asgi.HOST],  # the host schemathesis's in-process client names
    )
    application = create_app(lambda: model, limits)
    with asgi.get_client(application) as client:  # starts the lifespan: the model "loads"
        deadline = time.monotonic() + 30
        while client.get(f"http://{asgi.HOST}/ready").status_code != 200:
            assert time.monotonic() < deadline, "the app did not become ready"
            time.sleep(0.02)
    yield application


def test_api_conforms_to_its_schema(app: Any) -> None:
    """Every operation, schema-shaped inputs: no 5xx, a documented status code, content type
    and body, and errors in the documented shape."""
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        error_shape,
    ]
    labels = []
    for result in api.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=checks)

        run()
    assert "POST /v1/predict" in labels and "POST /v1/predict/batch" in labels
