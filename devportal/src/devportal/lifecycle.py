"""The app's life on an emulated portal: install (installer POST + ``ONAPPINSTALL``),
``installFinish``, update, uninstall, and the app's stored options (``app.option.*``,
``user.option.*``)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any
from typing import TYPE_CHECKING

import requests

from devportal.oauth import TokenPair

if TYPE_CHECKING:
    from devportal.portal import Portal


@dataclass
class InstallResult:
    """The app's answers to the installer POST and to ``ONAPPINSTALL``."""

    installer: requests.Response | None
    event: requests.Response | None
    finished: bool


class AppLifecycle:
    """Whether and how the app is installed on one portal, and what it stored there."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.installed = False
        self.install_finished = False
        self.version = "1"
        self.application_token = ""
        self.install_event_url: str | None = None
        self.options: dict[str, Any] = {}
        self.user_options: dict[int, dict[str, Any]] = {}

    def install(
        self,
        installer_path: str | None = "/install/",
        event_handler_path: str | None = "/install/events",
        *,
        finish_install: bool = True,
        event_first: bool = False,
        user_id: int | None = None,
        version: str = "1",
        lang: str | None = None,
    ) -> InstallResult:
        """Install the app as Bitrix24 does: installer POST (UI apps) + ``ONAPPINSTALL``.

        Both requests are sent synchronously, in the order chosen by ``event_first``.
        ``installer_path=None`` is an API-only app: install finishes by itself. With an
        installer, a real portal waits for the page's JS ``installFinish()``; the shortcut
        ``finish_install=True`` marks the app installed as soon as the installer answered
        200 (a browser test uses ``page_url("install")`` and the real call instead).
        """
        p = self.portal
        user_id = user_id or p.admin_user_id
        self.prepare_install(event_handler_path, version=version, api_only=installer_path is None)
        installer_resp: requests.Response | None = None
        event_resp: requests.Response | None = None

        def send_installer() -> None:
            nonlocal installer_resp
            if installer_path is None:
                return
            query, form = p.widgets.frame_payload(user_id, "DEFAULT", None, lang)
            url = p.emu.app_url(installer_path)
            installer_resp = p.bus.post_now("installer", "DEFAULT", url, form, query)

        def send_event() -> None:
            nonlocal event_resp
            event_resp = self.send_install_event(user_id=user_id, lang=lang, queued=False)

        for step in (send_event, send_installer) if event_first else (send_installer, send_event):
            step()
        if (
            installer_path is not None
            and finish_install
            and installer_resp is not None
            and installer_resp.status_code == 200
        ):
            self.finish_install()
        return InstallResult(installer_resp, event_resp, self.install_finished)

    def prepare_install(
        self, event_handler_path: str | None = "/install/events", *, version: str = "1",
        api_only: bool = False,
    ) -> None:  # fmt: skip
        """The app is added to the portal (not yet install-finished unless API-only)."""
        with self.portal.lock:
            if not self.installed or not self.application_token:
                # Bitrix24 keeps the application_token for the life of one install: a
                # re-install over an installed app keeps it, a new install gets a new one.
                self.application_token = secrets.token_hex(16)
            self.installed = True
            self.install_finished = api_only
            self.version = version
            self.install_event_url = (
                self.portal.emu.app_url(event_handler_path) if event_handler_path else None
            )

    def send_install_event(
        self, *, user_id: int | None = None, lang: str | None = None, queued: bool = True
    ) -> requests.Response | None:
        """``ONAPPINSTALL`` to the install event handler (shape of the docs' example)."""
        if self.install_event_url is None:
            return None
        p = self.portal
        pair = p.tokens_for(user_id or p.admin_user_id)
        data = {
            "event": "ONAPPINSTALL",
            "data": {"VERSION": self.version, "ACTIVE": "Y", "INSTALLED": "Y",
                     "LANGUAGE_ID": lang or p.lang},
            "ts": str(int(time.time())),
            "auth": self.lifecycle_auth(pair),
        }  # fmt: skip
        if queued:
            p.bus.queue("event", "ONAPPINSTALL", self.install_event_url, data)
            return None
        return p.bus.post_now("event", "ONAPPINSTALL", self.install_event_url, data, None)

    def finish_install(self) -> None:
        """What the installer's ``installFinish()`` does: the app becomes installed."""
        with self.portal.lock:
            if self.installed:
                self.install_finished = True

    def lifecycle_auth(self, pair: TokenPair) -> dict[str, str]:
        """``auth`` of ONAPPINSTALL / ONAPPUPDATE: tokens incl. the refresh token."""
        p = self.portal
        return {
            "domain": p.domain, "scope": p.scope,
            "access_token": pair.access_token, "refresh_token": pair.refresh_token,
            "expires_in": str(p.emu.tokens.access_ttl),
            "server_endpoint": p.server_endpoint, "status": p.app_status,
            "client_endpoint": p.client_endpoint, "member_id": p.member_id,
            "application_token": self.application_token,
        }  # fmt: skip

    def _lifecycle_urls(self, event: str) -> list[str]:
        urls = [b["handler"] for b in self.portal.bus.bindings if b["event"] == event]
        if not urls and self.install_event_url:
            urls.append(self.install_event_url)
        return list(dict.fromkeys(urls))

    def update_app(
        self, version: str, *, user_id: int | None = None
    ) -> list[requests.Response | None]:
        """A new app version is installed: ``ONAPPUPDATE`` to the bound handlers."""
        p = self.portal
        user_id = user_id or p.admin_user_id
        with p.lock:
            previous, self.version = self.version, version
            urls = self._lifecycle_urls("ONAPPUPDATE")
        out = []
        for url in urls:
            pair = p.tokens_for(user_id)
            data = {
                "event": "ONAPPUPDATE",
                "data": {"VERSION": version, "PREVIOUS_VERSION": previous,
                         "LANGUAGE_ID": p.lang},
                "ts": str(int(time.time())),
                "auth": self.lifecycle_auth(pair),
            }  # fmt: skip
            out.append(p.bus.post_now("event", "ONAPPUPDATE", url, data, None))
        return out

    def uninstall(self, clean: bool = True) -> list[requests.Response | None]:
        """Delete the app: handlers dropped, tokens revoked, then ``ONAPPUNINSTALL`` (no tokens).

        ``app.option`` values survive unless ``clean`` (marketplace behaviour).
        """
        p = self.portal
        with p.lock:
            urls = self._lifecycle_urls("ONAPPUNINSTALL")
            data = {
                "event": "ONAPPUNINSTALL",
                "data": {"LANGUAGE_ID": p.lang, "CLEAN": "1" if clean else "0"},
                "ts": str(int(time.time())),
                "auth": {
                    "domain": p.domain,
                    "server_endpoint": p.server_endpoint,
                    "client_endpoint": p.client_endpoint,
                    "member_id": p.member_id,
                    "application_token": self.application_token,
                },
            }
        # As on Bitrix24 the app is gone (its tokens revoked) before the event is delivered:
        # the app can check the uninstall is real by its stored tokens failing.
        with p.lock:
            self.installed = False
            self.install_finished = False
            p.bus.forget_app()
            p.bizproc.robots.clear()
            p.widgets.placements.clear()
            p.imbot.bots.clear()  # an app's bots go with it
            if clean:
                self.options.clear()
                self.user_options.clear()
        p.emu.tokens.invalidate(p.slug)
        return [p.bus.post_now("event", "ONAPPUNINSTALL", url, data, None) for url in urls]
