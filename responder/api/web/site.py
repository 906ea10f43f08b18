"""The dashboard in the API app: its routes, its static files and the live pages' poller."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.staticfiles import StaticFiles

from responder.api.context import ApiContext
from responder.api.web import live, pages

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI, context: ApiContext) -> list[str]:
    """Add the dashboard to `app`; return its route templates (for the request metrics)."""
    app.state.changes = live.for_app(context)
    for router in (pages.root, pages.router, live.router):
        app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="static")
    templates = [
        route.path
        for router in (pages.root, pages.router, live.router)
        for route in router.routes
        if isinstance(route, APIRoute)
    ]
    return [*templates, "/ui/static/{file}"]
