"""Schemathesis hooks of ``test_schemathesis``: loaded by ``st run`` (its config's ``hooks``).

The run authenticates as one admin. A generated ``PATCH /users/{username}`` that named it
with a new password would revoke its token, and every later request would be a 401: the
run would go on testing the API's refusals only. Its password is left out of such a request
(the rest of the update is sent). Disabling or demoting itself is a 409 the API answers.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

FUZZ_ADMIN = os.environ.get("FUZZ_ADMIN", "").lower()


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    username = (case.path_parameters or {}).get("username")
    if (
        case.method.upper() == "PATCH"
        and isinstance(username, str)
        and username.lower() == FUZZ_ADMIN
        and isinstance(case.body, dict)
    ):
        case.body.pop("password", None)
