"""/docs and /redoc work offline: every script, stylesheet and icon is served by the API."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

ASSET = re.compile(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""")
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_assets_the_api_serves(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "http://" not in html and "https://" not in html, "an asset from another host"
    assets = {url for url in ASSET.findall(html) if url != "/openapi.json"}
    assert any(url.endswith(".js") for url in assets), html
    for url in assets:
        assert url.startswith("/"), url
        served = client.get(url)
        assert served.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert served.headers["content-type"].startswith(CONTENT_TYPES[suffix]), url
        assert len(served.content) > 1000, url


def test_swagger_oauth2_redirect_page_is_served(client: TestClient) -> None:
    response = client.get("/docs/oauth2-redirect")
    assert response.status_code == 200 and "oauth2" in response.text.lower()
