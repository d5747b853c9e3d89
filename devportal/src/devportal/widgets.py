"""Where the app shows itself in an emulated portal: its page from the menu, the widgets it
bound (``placement.bind``), the POST a frame opens with, and what frames said to the portal
page (the b24jssdk frame protocol)."""

from __future__ import annotations

import json
import secrets
from typing import Any
from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from devportal.portal import Portal


def php_json(value: Any) -> str:
    """JSON the way PHP's ``json_encode`` writes it (escaped slashes)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")


class Widgets:
    """Placement bindings, app frames opened by users, and frame messages of one portal."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.placements: list[dict[str, Any]] = []
        self.next_placement_id = 1
        self.frame_messages: list[dict[str, Any]] = []

    def frame_payload(
        self, user_id: int, placement: str, options: dict[str, Any] | None, lang: str | None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """(query, form) of an app page / installer / widget POST, split as Bitrix24 sends it."""
        p = self.portal
        pair = p.tokens_for(user_id)
        query = {
            "DOMAIN": p.domain,
            "PROTOCOL": "0",
            "LANG": lang or p.lang,
            "APP_SID": secrets.token_hex(16),
        }
        form = {
            "AUTH_ID": pair.access_token,
            "AUTH_EXPIRES": str(p.emu.tokens.access_ttl),
            "REFRESH_ID": pair.refresh_token,
            "SERVER_ENDPOINT": p.server_endpoint,
            "APPLICATION_TOKEN": p.app.application_token,
            "APPLICATION_SCOPE": p.scope,
            "member_id": p.member_id,
            "status": p.app_status,
            "PLACEMENT": placement,
        }
        if options is not None:
            form["PLACEMENT_OPTIONS"] = php_json(options)
        return query, form

    def placement_binding(self, code: str, handler: str | None = None) -> dict[str, Any]:
        with self.portal.lock:
            for binding in self.placements:
                if binding["placement"] == code and handler in (None, binding["handler"]):
                    return dict(binding)
        raise KeyError(f"no handler bound to {code!r}")

    def open_placement(
        self,
        code: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: int | None = None,
        lang: str | None = None,
        handler: str | None = None,
    ) -> requests.Response:
        """A user opens a widget: POST to its HANDLER (split as :meth:`frame_payload`)."""
        p = self.portal
        if not p.app.install_finished:
            raise RuntimeError("widgets are not shown before installFinish")
        binding = self.placement_binding(code, handler)
        query, form = self.frame_payload(
            user_id or p.admin_user_id, code, dict(options or {}), lang
        )
        response = p.bus.post_now("placement", code, binding["handler"], form, query)
        if response is None:
            raise requests.ConnectionError(f"placement handler {binding['handler']} unreachable")
        return response

    def open_app(
        self, path: str = "/app/", *, user_id: int | None = None, lang: str | None = None
    ) -> requests.Response:
        """A user opens the app from the menu: POST with ``PLACEMENT=DEFAULT``."""
        p = self.portal
        query, form = self.frame_payload(user_id or p.admin_user_id, "DEFAULT", None, lang)
        response = p.bus.post_now("app", "DEFAULT", p.emu.app_url(path), form, query)
        if response is None:
            raise requests.ConnectionError("app page unreachable")
        return response
