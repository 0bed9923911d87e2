"""Start page: links to the pages the user's role may open."""

from __future__ import annotations

from typing import Any

import dash
from dash import dcc, html

from core.models import ROLES
from dashboard import access
from dashboard.context import current_user

dash.register_page(__name__, path="/", name="Home", order=0, roles=ROLES, nav=False)


def layout(**_: Any) -> html.Div:
    user = current_user()
    links = [
        html.Li(dcc.Link(page["name"], href=page["relative_path"]))
        for page in access.pages_for_role(user.role)
    ]
    return html.Div(
        [
            html.H2(f"Welcome, {user.display_name}"),
            html.P("Pages available to your role:"),
            html.Ul(links),
        ]
    )
