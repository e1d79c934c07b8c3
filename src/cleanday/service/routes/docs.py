"""`/docs`: the interactive API docs (Swagger UI), served from assets vendored in the package
(`service/static/docs/`, swagger-ui-dist from the npm registry, version in its VERSION file), so
the page works without internet."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI_VERSION = "5.35.0"
STATIC_PATH = "/static/docs"
STATIC_DIR = Path(__file__).resolve().parents[1] / "static" / "docs"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - API docs",
        swagger_js_url=f"{root}{STATIC_PATH}/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}",
        swagger_css_url=f"{root}{STATIC_PATH}/swagger-ui.css?v={SWAGGER_UI_VERSION}",
        swagger_favicon_url=f"{root}{STATIC_PATH}/favicon-32x32.png",
    )


def install(app: FastAPI) -> None:
    """Serve `/docs` and its assets from the package (the app is built with `docs_url=None`)."""
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="docs-static")
