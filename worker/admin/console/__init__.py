"""The console (DESIGN §10, A5): server-rendered pages over the API's own actions.

Sign in with an API token, which opens a server-side session (A8: the browser's HttpOnly,
SameSite=Strict cookie holds the session's random id, never the token); a community's page
has the seed's sections: Handling, JWT keys, Extra values mapping, Custom fields, Test a
token, Health, Audit. Forms post to the server, which runs the same `actions` as the API and,
on a refusal, shows the API's very message next to the field it is about. No JavaScript.

- `session`: who is signed in (`Visit`) and that a posted form is the console's (CSRF, `Form`,
  `same_origin`).
- `page`: the templates and what a page shows: sign-in, error, a community's page.
- `forms`: the changes the community page's forms post.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from worker.admin.console import forms, page
from worker.admin.console.page import STATIC, error_page

__all__ = ["error_page", "mount"]


def mount(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(page.router)
    app.include_router(forms.router)
