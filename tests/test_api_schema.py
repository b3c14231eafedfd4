"""Schemathesis against the OpenAPI document the live service serves: generated requests
(valid and invalid) never get a 500, and every answer matches the document (status code,
content type, body schema). Bounded: a few examples per operation, a deadline per example."""

from __future__ import annotations

import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Server, make_token

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def live(tmp_path_factory, tiny_scenario):
    """A live service with an admin token, the tiny scenario and one finished job."""
    root = tmp_path_factory.mktemp("schema")
    url = f"sqlite:///{root / 'store.sqlite'}"
    server = Server(url, root / "data", root / "server.log", "--workers", "1").start()
    try:
        token = make_token(url, "admin")
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url + "/v1", headers=headers, timeout=120) as client:
            files = [("files", (p.name, p.read_bytes())) for p in sorted(tiny_scenario.iterdir())]
            digest = client.post("/scenarios", files=files).json()["digest"]
            job_id = client.post("/jobs", json={"scenario": digest, "quarter": "2027Q1",
                                                "centre": "D04S01"}).json()["job_id"]
            deadline = time.monotonic() + 600
            while client.get(f"/jobs/{job_id}").json()["state"] in ("queued", "running"):
                assert time.monotonic() < deadline
                time.sleep(0.2)
            me = client.get("/me").json()
        yield {"server": server, "headers": headers, "digest": digest, "job_id": job_id,
               "token_id": me["token_id"]}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(live):
    """The OpenAPI document as the running service serves it."""
    return schemathesis.openapi.from_url(live["server"].url + "/openapi.json")


# Hypothesis is driven directly over each operation's strategy: schemathesis' lazy
# ``from_fixture`` relies on a pytest internal that pytest 9 no longer has.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
def test_no_server_errors_and_answers_match_the_document(api_schema, live, mode):
    """Generated calls with an admin token, valid and invalid: no 5xx, and a documented
    status, content type and body, on every operation."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 36
    failures: list[str] = []
    exercised: list[str] = []
    for operation in operations:
        @settings(max_examples=8, deadline=10_000, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case):
            params = case.path_parameters or {}
            # Aim most calls at real data, so they reach past the 404s.
            if "digest" in params:
                params["digest"] = live["digest"]
            if "job_id" in params:
                params["job_id"] = live["job_id"]
            if params.get("token_id") == live["token_id"]:
                params["token_id"] = live["token_id"] + 10_000  # never revoke our own token
            case.call_and_validate(headers=live["headers"], checks=CHECKS, timeout=60)

        try:
            call()
            exercised.append(operation.label)
        except Unsatisfiable:
            # Nothing to get wrong: an operation without parameters or body has no invalid
            # form (health, me, the lists).
            assert mode == GenerationMode.NEGATIVE and not operation.path_parameters
        except Exception as err:  # noqa: BLE001 - collect every operation's failure
            failures.append(f"{operation.label}: {err}"[:3000])
    assert not failures, "\n\n".join(failures)
    assert len(exercised) >= (36 if mode == GenerationMode.POSITIVE else 10), exercised


def test_the_document_declares_security_and_errors(live):
    """The served document names the bearer scheme, and every route but health uses it and
    documents 401."""
    doc = httpx.get(live["server"].url + "/openapi.json").json()
    assert doc["components"]["securitySchemes"]["token"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "wl_…",
        "description": doc["components"]["securitySchemes"]["token"]["description"]}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if path == "/v1/health":
                assert "security" not in op
                continue
            assert op["security"] == [{"token": []}], (method, path)
            assert "401" in op["responses"], (method, path)
    table = doc["paths"]["/v1/jobs/{job_id}/tables/{name}"]["get"]["responses"]["200"]
    assert set(table["content"]) == {"application/json", "text/csv",
                                     "application/vnd.apache.parquet"}
