"""Role checks for pages and callbacks, applied on the server for every request.

A page declares who may open it with a `roles` argument to `register_page`:

    dash.register_page(__name__, path="/study", roles=("admin", "study_manager"))

A callback declares its roles with `secure_callback`, which takes the same arguments
as `dash.callback` plus `roles`:

    @secure_callback(Output("grid", "rowData"), Input("study", "value"),
                     roles=("admin", "study_manager"))
    def update(study_id): ...

The request guard in `dashboard.auth` rejects (403) a callback request whose outputs
are not all declared for the user's role, and a page request for a page whose roles
exclude the user; an undeclared page or callback is open to no one. Study scope is
checked inside the callback by the core query functions (`Scope.require_study`),
which raise `AccessDenied`; the app turns that into a 403 JSON response.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import dash

from core.models import ROLES

# Maps "component-id.property" of each callback output to the roles allowed to
# update it. Filled at import time by `secure_callback`; never changed later.
CALLBACK_ROLES: dict[str, frozenset[str]] = {}


def _output_keys(args: Iterable[Any]) -> list[str]:
    keys = []
    for arg in args:
        items = arg if isinstance(arg, list | tuple) else [arg]
        for item in items:
            if isinstance(item, dash.Output):
                keys.append(output_key(item.component_id, item.component_property))
    return keys


def output_key(component_id: Any, component_property: str) -> str:
    """Return the registry key of an output.

    A dict id is keyed by its string values; one with a wildcard (MATCH, ALL) is
    keyed by its `type` alone, which then covers every concrete id of that type.
    """
    if isinstance(component_id, dict):
        values = component_id.items()
        if all(isinstance(value, str) for _, value in values):
            component_id = ",".join(f"{k}={v}" for k, v in sorted(values))
        else:
            component_id = f"type={component_id.get('type', '')}"
    return f"{component_id}.{component_property}"


def _roles_for(component_id: Any, component_property: str) -> frozenset[str]:
    roles = CALLBACK_ROLES.get(output_key(component_id, component_property))
    if roles is None and isinstance(component_id, dict):
        wildcard = f"type={component_id.get('type', '')}.{component_property}"
        roles = CALLBACK_ROLES.get(wildcard)
    return roles or frozenset()


def secure_callback(
    *args: Any, roles: Iterable[str], **kwargs: Any
) -> Callable[[Callable[..., Any]], Any]:
    """Register a Dash callback whose outputs only the given roles may request."""
    allowed = frozenset(roles)
    unknown = allowed - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; use roles from {ROLES}")
    for key in _output_keys([*args, kwargs.get("output", [])]):
        CALLBACK_ROLES[key] = allowed
    return dash.callback(*args, **kwargs)


def callback_allowed(outputs: Any, role: str) -> bool:
    """Return whether every output of a callback request is declared for `role`."""
    items = outputs if isinstance(outputs, list) else [outputs]
    if not items:
        return False
    for item in items:
        if not isinstance(item, dict):
            return False
        if role not in _roles_for(item.get("id"), str(item.get("property"))):
            return False
    return True


def page_for_path(path: str) -> dict[str, Any] | None:
    """Return the registered page whose path matches, or None."""
    path = "/" + path.strip("/") if path.strip("/") else "/"
    for page in dash.page_registry.values():
        if page.get("path") == path:
            return dict(page)
    return None


def page_allowed(page: dict[str, Any], role: str) -> bool:
    return role in page.get("roles", ())


def pages_for_role(role: str) -> list[dict[str, Any]]:
    """Return the pages a role may open, in registry order, for navigation links."""
    return [
        dict(page)
        for page in dash.page_registry.values()
        if page_allowed(page, role) and page.get("nav", True)
    ]
