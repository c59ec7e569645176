"""Schemathesis against the live app: every operation of ``/openapi.json``, fuzzed.

``python -m api`` runs with the real scikit-learn runtimes and the committed attrition
models, and ``st run`` generates requests from the schema (its examples, its edge cases,
random data and chains of calls linked by their responses) as an admin. The run fails on a
5xx, on an answer whose status, media type, headers or body the schema does not document,
on a 405 without the ``Allow`` of the schema's methods, and on a route that declares
authentication but serves without it. Its budget is bounded (25 examples an operation, one
worker, deterministic generation): about 35 s on 2 cores, and the same run each time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import ADMIN
from tests.live_server import live_api, server_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
)
MAX_EXAMPLES = 25
DEADLINE_SECONDS = 100.0
"""The whole run, bounded well under two minutes (it takes about 35 s on 2 cores)."""

# Existing models for the routes that take one: schemathesis's own names are all 404s.
_CONFIG = """\
hooks = "{hooks}"
workers = 1
continue-on-failure = true
headers = {{ Authorization = "Bearer {token}" }}

[generation]
max-examples = {max_examples}
deterministic = true
database = "none"

[[operations]]
include-path = "/predict/{{model_ref}}"
parameters = {{ model_ref = "attrition-gbm" }}

[[operations]]
include-path = "/v2/models/{{model_name}}/infer"
parameters = {{ model_name = "attrition-logreg" }}

[[operations]]
include-path = "/v2/models/{{model_name}}/versions/{{model_version}}/infer"
parameters = {{ model_name = "attrition-logreg", model_version = "1" }}
"""


def test_the_live_api_answers_as_its_openapi_schema_says(
    tmp_path: Path, attrition_store: Path
) -> None:
    env = server_env(attrition_store, tmp_path, LOG_LEVEL="warning")
    with live_api(tmp_path, env) as server:
        login = httpx.post(f"{server.url}/auth/token", data=ADMIN)
        assert login.status_code == 200, login.text
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            _CONFIG.format(
                hooks=HOOKS, token=login.json()["access_token"], max_examples=MAX_EXAMPLES
            )
        )
        command = [
            *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run"),
            *("--checks", ",".join(CHECKS), "--no-color", f"{server.url}/openapi.json"),
        ]
        started = time.monotonic()
        try:
            completed = subprocess.run(
                command,
                cwd=tmp_path,
                env={**server.env, "FUZZ_ADMIN": ADMIN["username"]},
                capture_output=True,
                text=True,
                timeout=DEADLINE_SECONDS,
            )
        except subprocess.TimeoutExpired as error:
            output = error.stdout.decode() if isinstance(error.stdout, bytes) else error.stdout
            pytest.fail(f"st run took more than {DEADLINE_SECONDS:g} s:\n{(output or '')[-6000:]}")
        elapsed = time.monotonic() - started
    report = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"st run failed after {elapsed:.0f} s:\n{report[-20000:]}"
    # Every operation was generated and run (a schema that failed to load tests nothing).
    assert "Tested: " in report and "passed" in report, report[-4000:]
