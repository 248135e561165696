"""schemathesis against the server's own OpenAPI schema: generated valid and invalid
requests for every endpoint; no 5xx, and every answer matches the schema."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests import environment

from .conftest import Server

environment.require("schemathesis")  # at import: the module imports it
import schemathesis  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

EXAMPLES = 40


@pytest.fixture(scope="module")
def fuzz_server(launcher) -> Server:
    # A server of its own: generated jobs and files must not disturb the other tests.
    return launcher.start("schemathesis", workers=2, task_timeout=20)


@pytest.fixture(scope="module")
def operations(fuzz_server):
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    schema.config.update(base_url=fuzz_server.url, request_timeout=60)
    return [result.ok() for result in schema.get_all_operations()]


def test_the_schema_covers_every_endpoint(operations):
    names = {f"{op.method.upper()} {op.path}" for op in operations}
    for expected in ("POST /process", "POST /items/", "POST /plan", "POST /render", "POST /compare", "POST /jobs",
                     "GET /jobs", "GET /jobs/{job_id}", "GET /jobs/{job_id}/results", "DELETE /jobs/{job_id}",
                     "GET /health", "GET /operations", "GET /metrics"):
        assert expected in names


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_every_endpoint_answers_without_5xx_and_as_documented(operations, mode):
    failures = []
    for operation in operations:
        excluded = [schemathesis.checks.positive_data_acceptance]
        if operation.method.upper() == "POST" and operation.path == "/render":
            # Multipart fields carry no JSON types: a "wrong type" arrives as text, and an empty
            # array as no field at all, which is a valid form. Such mutations are not invalid
            # data for /render; its refusals are tested in test_render_compare_metrics.py.
            excluded.append(schemathesis.checks.negative_data_rejection)

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            # The default checks: no server error, documented status codes, content types and
            # headers, bodies that match their schema, and schema-invalid data rejected.
            # Schema-valid data may still be refused with a 422 for what a JSON schema cannot
            # say (an odd kernel, an output equal to its input, a path with a NUL byte), so
            # "positive data acceptance" is left out.
            case.call_and_validate(excluded_checks=excluded)

        try:
            check()
        except Unsatisfiable:
            # no request can break this endpoint's schema (no body, or any string is a valid id)
            assert mode is GenerationMode.NEGATIVE, f"{operation.method.upper()} {operation.path}"
        except Exception as exc:  # collect every endpoint's failure, then report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
