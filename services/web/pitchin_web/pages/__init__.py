"""The pages: parse the form, call the services, render a template (thin, like the services' api.py).

One module per audience: `public` (events, RSVP, bookings), `donors` (sign-up, a donor's pages by
signed link), `offers` (answered with matching's offer token), `organisers` and `staff` (logged in
with their own API key); `common` holds what they share (rendering, error pages, the language switch, login and logout).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from pitchin_web.clients import Services
from pitchin_web.pages import common, donors, feedback, offers, organisers, public, staff, unsubscribe
from pitchin_web.pages.common import Doors, Web, install_page_errors, templates

if TYPE_CHECKING:
    from pitchin_web.main import WebSettings


def install(app: FastAPI, settings: WebSettings, services: Services) -> None:
    """The pages, their dependencies and their error pages on `app` (after pitchin_core's error handlers)."""
    app.state.web = Web(settings=settings, services=services, templates=templates(), doors=Doors(settings))
    install_page_errors(app)
    for pages in (public, feedback, donors, offers, common, organisers, staff, unsubscribe):
        app.include_router(pages.router)
