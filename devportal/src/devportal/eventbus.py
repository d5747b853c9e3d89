"""The events of an emulated portal: the handlers the app bound (``event.bind``), the
payloads Bitrix24 posts to them, and the hand-over to the delivery queue.

Actions build deliveries with the portal lock held (:meth:`EventBus.deliveries`) and send
them after releasing it (:meth:`EventBus.send`), so the app may call back meanwhile.
"""

from __future__ import annotations

import time
from typing import Any
from typing import TYPE_CHECKING

import requests

from b24app.bitrix.payload import flatten_php_form
from devportal.oauth import TokenPair
from devportal.recording import DeliveryRecord

if TYPE_CHECKING:
    from devportal.portal import Portal

Deliveries = list[tuple[str, dict[str, Any]]]


class EventBus:
    """Event bindings and deliveries of one portal."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.bindings: list[dict[str, Any]] = []
        self.next_id = 700
        # True while nothing is delivered (the demo replaying its past: devportal.demo_data)
        self.held = False
        self.skipped: list[tuple[str, str]] = []
        self._pairs: dict[int, TokenPair] = {}

    def forget_app(self) -> None:
        """The app is uninstalled: its handlers and event tokens go."""
        self.bindings.clear()
        self._pairs.clear()

    def pair(self, user_id: int) -> TokenPair:
        """Tokens put into event ``auth``: one pair per user, renewed when near expiry."""
        pair = self._pairs.get(user_id)
        tokens = self.portal.emu.tokens
        if (
            pair is None
            or not pair.alive
            or pair.expires_at - time.time() < 300
            or tokens.by_access(pair.access_token) is None
        ):
            pair = self.portal.tokens_for(user_id)
            self._pairs[user_id] = pair
        return pair

    def auth(self, user_id: int | None) -> dict[str, Any]:
        """``auth[...]`` of a CRM event, key order as in ``oncrmleadadd_event.form.json``.

        ``user_id=None``: the change was made by automation, so no tokens (documented).
        """
        p = self.portal
        if user_id is None:
            return {"domain": p.domain, "client_endpoint": p.client_endpoint,
                    "server_endpoint": p.server_endpoint, "member_id": p.member_id,
                    "application_token": p.app.application_token}  # fmt: skip
        pair = self.pair(user_id)
        return {
            "access_token": pair.access_token,
            "expires_in": str(pair.expires_in(time.time())),
            "scope": p.scope,
            "domain": p.domain,
            "server_endpoint": p.server_endpoint,
            "status": p.app_status,
            "client_endpoint": p.client_endpoint,
            "member_id": p.member_id,
            "refresh_token": pair.refresh_token,
            "application_token": p.app.application_token,
        }

    def deliveries(self, event: str, data: dict[str, Any], user_id: int | None) -> Deliveries:
        """(url, payload) for every handler bound to ``event``; empty before installFinish.

        Call with the lock held; submit the result with :meth:`send` after release.
        """
        if not self.portal.app.install_finished:
            if any(b["event"] == event for b in self.bindings):
                self.skipped.append((event, "app not install-finished"))
            return []
        if self.held:
            return []
        out = []
        for binding in self.bindings:
            if binding["event"] != event or binding["offline"]:
                continue
            auth_user = int(binding["auth_type"]) or user_id
            payload = {
                "event": event,
                "event_handler_id": str(binding["id"]),
                "data": data,
                "ts": str(int(time.time())),
                "auth": self.auth(auth_user),
            }
            out.append((binding["handler"], payload))
        return out

    def send(self, deliveries: Deliveries) -> None:
        for url, payload in deliveries:
            self.queue("event", payload["event"], url, payload)

    def queue(self, kind: str, name: str, url: str, data: dict[str, Any]) -> None:
        """Form-encode ``data`` and hand it to the delivery queue (answered later)."""
        pairs = flatten_php_form(data)
        record = DeliveryRecord(self.portal.slug, kind, name, url, dict(pairs))
        self.portal.emu.delivery.submit(record, pairs)

    def post_now(
        self, kind: str, name: str, url: str, data: dict[str, Any], query: dict[str, str] | None
    ) -> requests.Response | None:
        """Form-encode ``data`` and post it at once (installer, lifecycle events, widgets)."""
        pairs = flatten_php_form(data)
        record = DeliveryRecord(self.portal.slug, kind, name, url, dict(pairs), dict(query or {}))
        return self.portal.emu.delivery.post(record, pairs)
