"""The API over HTTP, with errors a page can show as they are.

Every call raises ``ApiUnavailableError`` when the API cannot be reached, ``LoginRequiredError``
on 401 and ``ApiResponseError`` for any other error status, carrying the API's own message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 2.0


class ApiError(Exception):
    """Base class: something a page shows instead of its content."""


class ApiUnavailableError(ApiError):
    """No answer from the API: not started, wrong ``API_URL``, or too slow."""


class ApiResponseError(ApiError):
    """The API answered with an error status; ``message`` is its explanation."""

    def __init__(self, status_code: int, message: str, detail: list[dict[str, str]]) -> None:
        super().__init__(status_code, message, detail)
        self.status_code, self.message, self.detail = status_code, message, detail

    def __str__(self) -> str:
        return f"{self.status_code}: {self.message}"


class LoginRequiredError(ApiResponseError):
    """401: no token, a wrong password, or an expired token."""


class ApiClient:
    """One method per API route the dashboard uses; JSON in, JSON out."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        evaluation_timeout: float = 300.0,
        metrics_token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.evaluation_timeout = evaluation_timeout
        self._metrics_headers = (
            {"Authorization": f"Bearer {metrics_token}"} if metrics_token else {}
        )
        # Idle connections are dropped well before uvicorn's 5 s keep-alive timeout: reusing
        # one the server is closing fails the request ("Server disconnected").
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS),
        )

    def close(self) -> None:
        self._http.close()

    # --- open routes -----------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    def ready(self) -> dict[str, Any]:
        return self._json("GET", "/ready")

    def metadata(self) -> dict[str, Any]:
        return self._json("GET", "/metadata")

    def models(self) -> dict[str, Any]:
        return self._json("GET", "/models")

    def model(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/models/{name}")

    def evaluation(self, name: str, version: str | None = None) -> dict[str, Any]:
        params = {"version": version} if version else None
        return self._json(
            "GET", f"/models/{name}/evaluation", params=params, timeout=self.evaluation_timeout
        )

    def metrics_text(self) -> str:
        return self._send("GET", "/metrics", headers=self._metrics_headers).text

    def predict_features(self, model: str, features: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("POST", f"/predict/{model}", json={"features": dict(features)})

    def predict_file(self, model: str, filename: str, data: bytes) -> dict[str, Any]:
        return self._json(
            "POST",
            f"/predict/{model}",
            files={"file": (filename, data)},
            timeout=self.evaluation_timeout,
        )

    # --- authenticated routes --------------------------------------------------------

    def login(self, username: str, password: str) -> str:
        """A bearer token for ``username``; ``LoginRequiredError`` for wrong credentials."""
        body = self._json("POST", "/auth/token", data={"username": username, "password": password})
        token: str = body["access_token"]
        return token

    def predictions(self, token: str, **filters: Any) -> dict[str, Any]:
        params = {key: value for key, value in filters.items() if value is not None}
        return self._json("GET", "/predictions", params=params, headers=_bearer(token))

    def traffic(self, token: str, window: str) -> dict[str, Any]:
        """Requests, errors, fallbacks and latency per bucket over the last hour, day or week."""
        return self._json("GET", "/traffic", params={"window": window}, headers=_bearer(token))

    def drift(self, token: str, name: str, version: str | None = None) -> dict[str, Any]:
        """PSI of each feature and of the predictions over the version's recent traffic."""
        params = {"version": version} if version else {}
        return self._json("GET", f"/models/{name}/drift", params=params, headers=_bearer(token))

    def history(self, token: str, name: str) -> dict[str, Any]:
        """Who changed what of model ``name``, newest first."""
        return self._json("GET", f"/models/{name}/history", headers=_bearer(token))

    def set_alias(self, token: str, name: str, alias: str, version: str) -> dict[str, Any]:
        """Point ``name@alias`` at ``version`` (admin): every worker serves it within 2 s."""
        return self._json(
            "PUT",
            f"/models/{name}/aliases/{alias}",
            json={"version": version},
            headers=_bearer(token),
        )

    def set_default_model(self, token: str, ref: str) -> dict[str, Any]:
        """Make ``ref`` the model ``POST /predict`` serves (admin)."""
        return self._json("PUT", "/default-model", json={"model": ref}, headers=_bearer(token))

    # --- plumbing --------------------------------------------------------------------

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self._send(method, path, **kwargs).json()
        return body

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as error:
            raise ApiUnavailableError(
                f"the API at {self.base_url} did not answer {path} in time ({error!r})"
            ) from error
        except httpx.TransportError as error:
            raise ApiUnavailableError(
                f"the API at {self.base_url} is not reachable ({type(error).__name__}): "
                "start it with `python -m api` (or `make run`), or set API_URL"
            ) from error
        if response.is_error:
            raise _response_error(response)
        return response


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _response_error(response: httpx.Response) -> ApiResponseError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = body.get("error") if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) else None
    message = message or response.reason_phrase or "error"
    detail = detail if isinstance(detail, list) else []
    error_type = LoginRequiredError if response.status_code == 401 else ApiResponseError
    logger.info(
        "API %s %s: %s %s",
        response.request.method,
        response.request.url.path,
        response.status_code,
        message,
    )
    return error_type(response.status_code, message, detail)
