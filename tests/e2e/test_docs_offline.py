"""`/docs` works without internet: the Swagger UI page loads only assets the service serves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cleanday.config import Settings
from cleanday.service.app import build_service, create_app


def test_docs_page_loads_only_vendored_assets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEANDAY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings()
    with TestClient(create_app(settings, build_service(settings), scheduler=False)) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?["']([^"']+)["']""", page.text)
        assets = [a or b for a, b in urls]
        assert assets, page.text
        assert not [u for u in assets if u.startswith(("http:", "https:", "//"))], assets
        assert "cdn" not in page.text.lower()
        for url in assets:
            got = client.get(url)
            assert got.status_code == 200, url
        js = client.get("/static/docs/swagger-ui-bundle.js")
        assert "SwaggerUIBundle" in js.text
        assert client.get("/openapi.json").json()["info"]["title"] == "cleanday ledger service"
