"""Property-based tests of the HTTP API against its own OpenAPI schema (schemathesis), bounded
in examples per operation and in time, on a real server at 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from sentimodal.interfaces.server import ServerSettings
from server_fixtures import ThreadServer, train_fusion


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = train_fusion(tmp_path_factory.mktemp("schema") / "fusion")
    limits = ServerSettings(max_request_bytes=256 * 1024, max_batch_posts=4, batch_window_ms=1)
    with ThreadServer(Path(model), limits) as running:
        yield running.base


def test_api_conforms_to_its_schema(base_url: str) -> None:
    """Every operation, schema-shaped inputs: no 5xx, a documented status code and content
    type, and bodies that match the documented response schemas."""
    api = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    labels = []
    for result in api.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base_url, timeout=10, checks=checks)

        run()
    assert "POST /v1/predict" in labels and "POST /v1/predict/batch" in labels
