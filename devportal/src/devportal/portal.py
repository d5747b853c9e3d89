"""One emulated Bitrix24 portal: its state, and the actions a person or the portal itself
performs (install the app, edit leads, run a robot, open a widget).

State is kept in memory and guarded by one re-entrant lock per portal. Actions that make
the portal call the app build the form payloads here (shapes copied from the fixtures) and
hand them to the delivery queue *after* releasing the lock, so the app may call back.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import requests

from b24app.bitrix.payload import flatten_php_form
from devportal import deals as deals_mod
from devportal import defaults
from devportal import imbot
from devportal.booking import BookingStore
from devportal.booking import default_slots
from devportal.imbot import ImBots
from devportal.leads import as_str
from devportal.leads import create_lead
from devportal.leads import fmt_dt
from devportal.leads import LeadStore
from devportal.leads import modify_lead
from devportal.limits import LeakyBucket
from devportal.limits import OperatingTime
from devportal.oauth import TokenPair
from devportal.openlines import ChatMessage
from devportal.openlines import OpenLineChat
from devportal.openlines import OpenLines
from devportal.recording import DeliveryRecord
from devportal.rest import crm_misc
from devportal.rest.workflows import default_templates

if TYPE_CHECKING:
    from devportal.server import DevPortal

Pairs = list[tuple[str, str]]


@dataclass
class RobotCall:
    """A robot run waiting for ``bizproc.event.send``."""

    event_token: str
    code: str
    lead_id: int
    properties: dict[str, Any]
    use_subscription: str
    expires_at: float
    used: bool = False
    return_values: dict[str, Any] | None = None
    log_message: str | None = None
    logs: list[str] = field(default_factory=list)
    sent_at: float | None = None


@dataclass
class InstallResult:
    """The app's answers to the installer POST and to ``ONAPPINSTALL``."""

    installer: requests.Response | None
    event: requests.Response | None
    finished: bool


def _hex() -> str:
    return secrets.token_hex(16)


def php_json(value: Any) -> str:
    """JSON the way PHP's ``json_encode`` writes it (escaped slashes)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")


class Portal:
    """A portal (tenant). Created by :meth:`DevPortal.create_portal`, never directly."""

    def __init__(
        self,
        emu: DevPortal,
        slug: str,
        *,
        lang: str = "ru",
        time_zone: str = "Europe/Moscow",
        admin_user_id: int = 1,
        users: list[dict[str, Any]] | None = None,
        departments: list[dict[str, Any]] | None = None,
        app_status: str = "L",
        license: str = "ru_pro",
        scope: str = defaults.DEFAULT_SCOPE,
        rate: float = 2.0,
        burst: int = 50,
        crm_mode: str = "classic",
        operating_limit: float = 480.0,
        batch_billing: str = "commands",
    ) -> None:
        self.emu = emu
        self.slug = slug
        self.lang = lang
        self.time_zone = time_zone
        self.tz = ZoneInfo(time_zone)
        self.member_id = _hex()
        self.app_status = app_status
        self.license = license
        self.scope = scope
        self.lock = threading.RLock()
        self.bucket = LeakyBucket(rate, burst)
        self.operating = OperatingTime(operating_limit, batch_billing=batch_billing)
        self.admin_user_id = admin_user_id
        self.users: dict[int, dict[str, Any]] = {}
        for raw in users if users is not None else defaults.DEFAULT_USERS:
            self.add_user(**raw)
        if admin_user_id in self.users:
            self.users[admin_user_id]["ADMIN"] = True
        # CRM read permission beyond one's own items: user id -> {"lead", "deal"} (see may_read)
        self.crm_read_all: dict[int, set[str]] = {}
        self.departments: dict[int, dict[str, Any]] = {
            int(d["ID"]): dict(d)
            for d in (departments if departments is not None else defaults.DEFAULT_DEPARTMENTS)
        }
        # App lifecycle
        self.installed = False
        self.install_finished = False
        self.version = "1"
        self.application_token = ""
        self.install_event_url: str | None = None
        # App registrations
        self.events: list[dict[str, Any]] = []
        self.next_event_id = 700
        self.robots: dict[str, dict[str, Any]] = {}
        self.placements: list[dict[str, Any]] = []
        self.next_placement_id = 1
        self.options: dict[str, Any] = {}
        self.user_options: dict[int, dict[str, Any]] = {}
        # CRM
        self.leads = LeadStore()
        self.statuses: dict[int, dict[str, Any]] = {}
        self.next_status_id = 1
        self._seed_statuses()
        self.userfields: dict[int, dict[str, Any]] = {}
        self.next_userfield_id = 100
        self.stage_history: list[dict[str, Any]] = []
        self.stage_history_ids: list[int] = []
        self.stage_history_by_id: dict[int, dict[str, Any]] = {}
        self.activities: dict[int, dict[str, Any]] = {}
        self.activity_ids: list[int] = []
        self.next_activity_id = 1
        # Deals, pipelines, contacts and the CRM mode (devportal.deals)
        self.crm_mode = deals_mod.SIMPLE if crm_mode == "simple" else deals_mod.CLASSIC
        self.deals = LeadStore()
        self.deal_categories: dict[int, dict[str, Any]] = {}
        self.deal_userfields: dict[int, dict[str, Any]] = {}
        self.deal_history: list[dict[str, Any]] = []
        self.deal_history_ids: list[int] = []
        self.deal_history_by_id: dict[int, dict[str, Any]] = {}
        self.contacts: dict[int, dict[str, Any]] = {}
        self.next_contact_id = 1
        deals_mod.seed_pipeline(self, 0, "Общее" if lang.startswith("ru") else "General", 0)
        # Online Booking, open-line chats, workflow templates (client loop)
        self.booking = BookingStore()
        for resource_id, ranges in default_slots(time_zone).items():
            self.booking.set_slots(resource_id, ranges)
        self.openlines = OpenLines()
        self.imbot = ImBots()
        self.workflow_templates: list[dict[str, Any]] = default_templates()
        self.workflows: list[dict[str, Any]] = []
        # What the app produced, for assertions
        self.timeline_comments: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []
        self.robot_calls: dict[str, RobotCall] = {}
        self.frame_messages: list[dict[str, Any]] = []
        self.skipped_deliveries: list[tuple[str, str]] = []
        # True while nothing is delivered (the demo replaying its past: devportal.demo_data)
        self.events_held = False
        self._event_pairs: dict[int, TokenPair] = {}

    # -- identity and urls -----------------------------------------------------------------

    @property
    def domain(self) -> str:
        """``127.0.0.1:<port>``: what Bitrix24 would send as ``DOMAIN``."""
        return self.emu.host

    @property
    def client_endpoint(self) -> str:
        return f"{self.emu.url}/{self.slug}/rest/"

    @property
    def server_endpoint(self) -> str:
        return self.emu.server_endpoint

    def page_url(self, page: str) -> str:
        """Browser page of this portal, e.g. ``page_url("install")``."""
        return f"{self.emu.url}/{self.slug}/page/{page}"

    def now_str(self, ts: float | None = None) -> str:
        return fmt_dt(time.time() if ts is None else ts, self.tz)

    # -- users ------------------------------------------------------------------------------

    def add_user(self, ID: int, **fields: Any) -> dict[str, Any]:
        user = {
            "ID": str(ID),
            "ACTIVE": fields.pop("ACTIVE", True),
            "NAME": "",
            "LAST_NAME": "",
            "EMAIL": "",
            "WORK_POSITION": "",
            "PERSONAL_GENDER": "",
            "TIME_ZONE": "",
            "UF_DEPARTMENT": [],
            "USER_TYPE": "employee",
            "ADMIN": False,
        }
        user.update(fields)
        with getattr(self, "lock", threading.RLock()):
            self.users[int(ID)] = user
        return user

    def is_admin(self, user_id: int) -> bool:
        user = self.users.get(user_id)
        return bool(user and user.get("ADMIN"))

    def grant_crm_read(self, user_id: int, entity: str) -> None:
        """Let ``user_id`` read every ``entity`` ("lead" / "deal"), not only their own."""
        with self.lock:
            self.crm_read_all.setdefault(user_id, set()).add(entity)

    def may_read(self, user_id: int, entity: str, row: dict[str, Any]) -> bool:
        """May ``user_id`` read this lead/deal row? Admins read all; others read the items they
        are responsible for (``ASSIGNED_BY_ID``) unless granted the entity (our model of a
        CRM role with "own items" read access; see the package docstring)."""
        if self.is_admin(user_id) or entity in self.crm_read_all.get(user_id, ()):
            return True
        return str(row.get("ASSIGNED_BY_ID") or "") == str(user_id)

    def tokens_for(self, user_id: int | None = None) -> TokenPair:
        """A fresh token pair for a user (default: the admin), as if they opened the app."""
        return self.emu.tokens.issue(self.slug, user_id or self.admin_user_id)

    def authorization_code(self, user_id: int | None = None) -> str:
        """A code for ``grant_type=authorization_code`` (valid 30 s, single use)."""
        return self.emu.tokens.issue_code(self.slug, user_id or self.admin_user_id)

    def expire_tokens(self) -> int:
        """Expire every current access token of this portal (refresh still works)."""
        return self.emu.tokens.expire_access(self.slug)

    def revoke_grant(self) -> None:
        """Refresh tokens of this portal stop working: refresh answers ``invalid_grant``."""
        self.emu.tokens.revoke_refresh(self.slug)

    # -- payload pieces ---------------------------------------------------------------------

    def _event_pair(self, user_id: int) -> TokenPair:
        """Tokens put into event ``auth``: one pair per user, renewed when near expiry."""
        pair = self._event_pairs.get(user_id)
        if (
            pair is None
            or not pair.alive
            or pair.expires_at - time.time() < 300
            or self.emu.tokens.by_access(pair.access_token) is None
        ):
            pair = self.tokens_for(user_id)
            self._event_pairs[user_id] = pair
        return pair

    def _auth_common(self) -> dict[str, str]:
        return {
            "domain": self.domain,
            "server_endpoint": self.server_endpoint,
            "client_endpoint": self.client_endpoint,
            "member_id": self.member_id,
            "application_token": self.application_token,
        }

    def event_auth(self, user_id: int | None) -> dict[str, Any]:
        """``auth[...]`` of a CRM event, key order as in ``oncrmleadadd_event.form.json``.

        ``user_id=None``: the change was made by automation, so no tokens (documented).
        """
        if user_id is None:
            common = self._auth_common()
            return {k: common[k] for k in ("domain", "client_endpoint", "server_endpoint",
                                            "member_id", "application_token")}  # fmt: skip
        pair = self._event_pair(user_id)
        return {
            "access_token": pair.access_token,
            "expires_in": str(pair.expires_in(time.time())),
            "scope": self.scope,
            "domain": self.domain,
            "server_endpoint": self.server_endpoint,
            "status": self.app_status,
            "client_endpoint": self.client_endpoint,
            "member_id": self.member_id,
            "refresh_token": pair.refresh_token,
            "application_token": self.application_token,
        }

    def frame_payload(
        self, user_id: int, placement: str, options: dict[str, Any] | None, lang: str | None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """(query, form) of an app page / installer / widget POST, split as Bitrix24 sends it."""
        pair = self.tokens_for(user_id)
        query = {
            "DOMAIN": self.domain,
            "PROTOCOL": "0",
            "LANG": lang or self.lang,
            "APP_SID": _hex(),
        }
        form = {
            "AUTH_ID": pair.access_token,
            "AUTH_EXPIRES": str(self.emu.tokens.access_ttl),
            "REFRESH_ID": pair.refresh_token,
            "SERVER_ENDPOINT": self.server_endpoint,
            "APPLICATION_TOKEN": self.application_token,
            "APPLICATION_SCOPE": self.scope,
            "member_id": self.member_id,
            "status": self.app_status,
            "PLACEMENT": placement,
        }
        if options is not None:
            form["PLACEMENT_OPTIONS"] = php_json(options)
        return query, form

    def _post_now(
        self, kind: str, name: str, url: str, data: dict[str, Any], query: dict[str, str] | None
    ) -> requests.Response | None:
        pairs = flatten_php_form(data)
        record = DeliveryRecord(self.slug, kind, name, url, dict(pairs), dict(query or {}))
        return self.emu.delivery.post(record, pairs)

    def _queue(self, kind: str, name: str, url: str, data: dict[str, Any]) -> None:
        pairs = flatten_php_form(data)
        record = DeliveryRecord(self.slug, kind, name, url, dict(pairs))
        self.emu.delivery.submit(record, pairs)

    # -- app lifecycle ----------------------------------------------------------------------

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
        user_id = user_id or self.admin_user_id
        self.prepare_install(event_handler_path, version=version, api_only=installer_path is None)
        installer_resp: requests.Response | None = None
        event_resp: requests.Response | None = None

        def send_installer() -> None:
            nonlocal installer_resp
            if installer_path is None:
                return
            query, form = self.frame_payload(user_id, "DEFAULT", None, lang)
            installer_resp = self._post_now(
                "installer", "DEFAULT", self.emu.app_url(installer_path), form, query
            )

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
        with self.lock:
            if not self.installed or not self.application_token:
                # Bitrix24 keeps the application_token for the life of one install: a
                # re-install over an installed app keeps it, a new install gets a new one.
                self.application_token = _hex()
            self.installed = True
            self.install_finished = api_only
            self.version = version
            self.install_event_url = (
                self.emu.app_url(event_handler_path) if event_handler_path else None
            )

    def send_install_event(
        self, *, user_id: int | None = None, lang: str | None = None, queued: bool = True
    ) -> requests.Response | None:
        """``ONAPPINSTALL`` to the install event handler (shape of the docs' example)."""
        if self.install_event_url is None:
            return None
        pair = self.tokens_for(user_id or self.admin_user_id)
        data = {
            "event": "ONAPPINSTALL",
            "data": {"VERSION": self.version, "ACTIVE": "Y", "INSTALLED": "Y",
                     "LANGUAGE_ID": lang or self.lang},
            "ts": str(int(time.time())),
            "auth": self._lifecycle_auth(pair),
        }  # fmt: skip
        if queued:
            self._queue("event", "ONAPPINSTALL", self.install_event_url, data)
            return None
        return self._post_now("event", "ONAPPINSTALL", self.install_event_url, data, None)

    def finish_install(self) -> None:
        """What the installer's ``installFinish()`` does: the app becomes installed."""
        with self.lock:
            if self.installed:
                self.install_finished = True

    def _lifecycle_auth(self, pair: TokenPair) -> dict[str, str]:
        """``auth`` of ONAPPINSTALL / ONAPPUPDATE: tokens incl. the refresh token."""
        return {
            "domain": self.domain, "scope": self.scope,
            "access_token": pair.access_token, "refresh_token": pair.refresh_token,
            "expires_in": str(self.emu.tokens.access_ttl),
            "server_endpoint": self.server_endpoint, "status": self.app_status,
            "client_endpoint": self.client_endpoint, "member_id": self.member_id,
            "application_token": self.application_token,
        }  # fmt: skip

    def _lifecycle_urls(self, event: str) -> list[str]:
        urls = [b["handler"] for b in self.events if b["event"] == event]
        if not urls and self.install_event_url:
            urls.append(self.install_event_url)
        return list(dict.fromkeys(urls))

    def update_app(
        self, version: str, *, user_id: int | None = None
    ) -> list[requests.Response | None]:
        """A new app version is installed: ``ONAPPUPDATE`` to the bound handlers."""
        user_id = user_id or self.admin_user_id
        with self.lock:
            previous, self.version = self.version, version
            urls = self._lifecycle_urls("ONAPPUPDATE")
        out = []
        for url in urls:
            pair = self.tokens_for(user_id)
            data = {
                "event": "ONAPPUPDATE",
                "data": {"VERSION": version, "PREVIOUS_VERSION": previous,
                         "LANGUAGE_ID": self.lang},
                "ts": str(int(time.time())),
                "auth": self._lifecycle_auth(pair),
            }  # fmt: skip
            out.append(self._post_now("event", "ONAPPUPDATE", url, data, None))
        return out

    def uninstall(self, clean: bool = True) -> list[requests.Response | None]:
        """Delete the app: handlers dropped, tokens revoked, then ``ONAPPUNINSTALL`` (no tokens).

        ``app.option`` values survive unless ``clean`` (marketplace behaviour).
        """
        with self.lock:
            urls = self._lifecycle_urls("ONAPPUNINSTALL")
            data = {
                "event": "ONAPPUNINSTALL",
                "data": {"LANGUAGE_ID": self.lang, "CLEAN": "1" if clean else "0"},
                "ts": str(int(time.time())),
                "auth": {
                    "domain": self.domain,
                    "server_endpoint": self.server_endpoint,
                    "client_endpoint": self.client_endpoint,
                    "member_id": self.member_id,
                    "application_token": self.application_token,
                },
            }
        # As on Bitrix24 the app is gone (its tokens revoked) before the event is delivered:
        # the app can check the uninstall is real by its stored tokens failing.
        with self.lock:
            self.installed = False
            self.install_finished = False
            self.events.clear()
            self.robots.clear()
            self.placements.clear()
            self._event_pairs.clear()
            self.imbot.bots.clear()  # an app's bots go with it
            if clean:
                self.options.clear()
                self.user_options.clear()
        self.emu.tokens.invalidate(self.slug)
        return [self._post_now("event", "ONAPPUNINSTALL", url, data, None) for url in urls]

    # -- events -----------------------------------------------------------------------------

    def event_deliveries(
        self, event: str, data: dict[str, Any], user_id: int | None
    ) -> list[tuple[str, dict[str, Any]]]:
        """(url, payload) for every handler bound to ``event``; empty before installFinish.

        Call with the lock held; submit the result with :meth:`send_events` after release.
        """
        if not self.install_finished:
            if any(b["event"] == event for b in self.events):
                self.skipped_deliveries.append((event, "app not install-finished"))
            return []
        if self.events_held:
            return []
        out = []
        for binding in self.events:
            if binding["event"] != event or binding["offline"]:
                continue
            auth_user = int(binding["auth_type"]) or user_id
            out.append(
                (
                    binding["handler"],
                    {
                        "event": event,
                        "event_handler_id": str(binding["id"]),
                        "data": data,
                        "ts": str(int(time.time())),
                        "auth": self.event_auth(auth_user),
                    },
                )
            )
        return out

    def send_events(self, deliveries: list[tuple[str, dict[str, Any]]]) -> None:
        for url, payload in deliveries:
            self._queue("event", payload["event"], url, payload)

    # -- CRM actions (what people do in the portal UI) ----------------------------------------

    def add_lead(
        self,
        fields: dict[str, Any] | None = None,
        *,
        by_user: int | None = 1,
        created_at: datetime | float | None = None,
        events: bool = True,
    ) -> int:
        """Create a lead as ``by_user`` (None = an automation rule: event without tokens)."""
        ts = created_at.timestamp() if isinstance(created_at, datetime) else created_at
        with self.lock:
            lead_id = create_lead(self, dict(fields or {}), by_user or self.admin_user_id, ts)
            out = (
                self.event_deliveries("ONCRMLEADADD", {"FIELDS": {"ID": str(lead_id)}}, by_user)
                if events
                else []
            )
            for name, data in deals_mod.after_lead_created(
                self, lead_id, by_user or self.admin_user_id, ts
            ):
                out += self.event_deliveries(name, data, by_user) if events else []
        self.send_events(out)
        return lead_id

    def update_lead(
        self,
        lead_id: int,
        fields: dict[str, Any],
        *,
        by_user: int | None = 1,
        at: datetime | float | None = None,
        events: bool = True,
    ) -> None:
        ts = at.timestamp() if isinstance(at, datetime) else at
        with self.lock:
            modify_lead(self, lead_id, dict(fields), by_user or self.admin_user_id, ts)
            out = self._crm_event("ONCRMLEADUPDATE", lead_id, by_user) if events else []
        self.send_events(out)

    def _crm_event(
        self, event: str, entity_id: int, by_user: int | None
    ) -> list[tuple[str, dict[str, Any]]]:
        """The deliveries of a lead/deal event (``{"FIELDS": {"ID": …}}``)."""
        return self.event_deliveries(event, {"FIELDS": {"ID": str(entity_id)}}, by_user)

    def _delete_row(
        self, store: LeadStore, entity_id: int, event: str, by_user: int | None
    ) -> None:
        """Delete a lead/deal row (KeyError if absent) and fire ``event``."""
        with self.lock:
            if not store.delete(entity_id):
                raise KeyError(entity_id)
            out = self._crm_event(event, entity_id, by_user)
        self.send_events(out)

    def delete_lead(self, lead_id: int, *, by_user: int | None = 1) -> None:
        self._delete_row(self.leads, lead_id, "ONCRMLEADDELETE", by_user)

    def add_deal(
        self,
        fields: dict[str, Any] | None = None,
        *,
        by_user: int | None = 1,
        created_at: datetime | float | None = None,
        events: bool = True,
    ) -> int:
        """Create a deal directly (no lead); fires ``ONCRMDEALADD``."""
        ts = created_at.timestamp() if isinstance(created_at, datetime) else created_at
        with self.lock:
            deal_id = deals_mod.create_deal(
                self, dict(fields or {}), by_user or self.admin_user_id, ts
            )
            out = self._crm_event("ONCRMDEALADD", deal_id, by_user) if events else []
        self.send_events(out)
        return deal_id

    def update_deal(
        self,
        deal_id: int,
        fields: dict[str, Any],
        *,
        by_user: int | None = 1,
        at: datetime | float | None = None,
        events: bool = True,
    ) -> None:
        ts = at.timestamp() if isinstance(at, datetime) else at
        with self.lock:
            deals_mod.modify_deal(self, deal_id, dict(fields), by_user or self.admin_user_id, ts)
            out = self._crm_event("ONCRMDEALUPDATE", deal_id, by_user) if events else []
        self.send_events(out)

    def add_lead_field(self, name: str, user_type: str, label: str) -> int:
        """The admin adds a lead user field in the CRM settings (no event)."""
        from devportal.rest import crm_lead

        with self.lock:
            return crm_lead.add_userfield(
                self, {"FIELD_NAME": name, "USER_TYPE_ID": user_type, "EDIT_FORM_LABEL": label,
                       "LIST_COLUMN_LABEL": label},
            )  # fmt: skip

    def add_contact(self, name: str, last_name: str = "", **fields: Any) -> int:
        """A CRM contact (a booking's client, a deal's ``CONTACT_ID``); no event."""
        with self.lock:
            return deals_mod.add_contact(
                self, {"NAME": name, "LAST_NAME": last_name, **fields}, self.admin_user_id, None
            )

    def delete_deal(self, deal_id: int, *, by_user: int | None = 1) -> None:
        self._delete_row(self.deals, deal_id, "ONCRMDEALDELETE", by_user)

    def convert_lead(
        self,
        lead_id: int,
        deal_fields: dict[str, Any] | None = None,
        *,
        by_user: int | None = 1,
        at: datetime | float | None = None,
    ) -> int:
        """A person converts a lead into contact + deal; returns the deal id."""
        ts = at.timestamp() if isinstance(at, datetime) else at
        with self.lock:
            deal_id, events = deals_mod.convert_lead(
                self, lead_id, by_user or self.admin_user_id, ts, deal_fields
            )
            out = [d for name, data in events for d in self.event_deliveries(name, data, by_user)]
        self.send_events(out)
        return deal_id

    def set_crm_mode(self, mode: str) -> None:
        """The admin switches the CRM mode (``simple`` / ``classic``)."""
        with self.lock:
            self.crm_mode = deals_mod.SIMPLE if mode == "simple" else deals_mod.CLASSIC

    def deal(self, deal_id: int) -> dict[str, Any] | None:
        """The stored deal (``crm.deal.get`` shape), or None."""
        with self.lock:
            row = self.deals.get(deal_id)
            return dict(row) if row else None

    def deal_of_lead(self, lead_id: int) -> int | None:
        """The id of the deal a lead was converted into, or None."""
        with self.lock:
            return next(
                (i for i, r in self.deals.rows.items() if r.get("LEAD_ID") == str(lead_id)), None
            )

    def lead(self, lead_id: int) -> dict[str, Any] | None:
        """The stored lead (``crm.lead.get`` shape), or None."""
        with self.lock:
            row = self.leads.get(lead_id)
            return dict(row) if row else None

    def add_activity(
        self,
        lead_id: int,
        *,
        kind: str = "call",
        direction: str = "outgoing",
        by_user: int | None = 1,
        subject: str = "",
        completed: bool = True,
        at: datetime | float | None = None,
    ) -> int:
        """A call/e-mail/meeting on a lead, as a manager logs it; fires ``ONCRMACTIVITYADD``."""
        type_id = {"meeting": 1, "call": 2, "task": 3, "email": 4}[kind]
        fields = {
            "OWNER_TYPE_ID": 1,
            "OWNER_ID": lead_id,
            "TYPE_ID": type_id,
            "DIRECTION": 2 if direction == "outgoing" else 1,
            "SUBJECT": subject or kind,
            "COMPLETED": "Y" if completed else "N",
            "RESPONSIBLE_ID": by_user or self.admin_user_id,
        }
        ts = at.timestamp() if isinstance(at, datetime) else at
        with self.lock:
            act_id = crm_misc.create_activity(self, fields, by_user or self.admin_user_id, ts)
            out = self.event_deliveries(
                "ONCRMACTIVITYADD", {"FIELDS": {"ID": str(act_id)}}, by_user
            )
        self.send_events(out)
        return act_id

    def bulk_create_leads(
        self,
        n: int,
        *,
        status_id: Any = "NEW",
        source_id: Any = "CALL",
        assigned_by_id: Any = 1,
        start: datetime | float | None = None,
        step_seconds: float = 600.0,
        fields: Any = None,
    ) -> list[int]:
        """``n`` leads without events (a back-fill fixture). Any argument may be a callable
        ``f(i) -> value``; ``fields(i)`` returns extra fields. Stage history is recorded."""
        base = start.timestamp() if isinstance(start, datetime) else start
        if base is None:
            base = time.time() - n * step_seconds

        def pick(value: Any, i: int) -> Any:
            return value(i) if callable(value) else value

        ids = []
        with self.lock:
            for i in range(n):
                row = {
                    "TITLE": f"Лид #{self.leads.next_id}",
                    "STATUS_ID": pick(status_id, i),
                    "SOURCE_ID": pick(source_id, i),
                    "ASSIGNED_BY_ID": pick(assigned_by_id, i),
                }
                if fields is not None:
                    row.update(pick(fields, i) or {})
                ids.append(create_lead(self, row, 1, base + i * step_seconds))
        return ids

    # -- Online Booking and open-line chats (what a receptionist / the client does) -------------

    def add_booking(
        self,
        start: datetime | float,
        minutes: int = 60,
        *,
        name: str = "",
        resource_ids: list[int] | None = None,
        contact_id: int | None = None,
        deal_id: int | None = None,
        by_user: int | None = 1,
        time_zone: str | None = None,
    ) -> int:
        """A booking made in the Booking UI, with its client and deal; fires ONBOOKINGADD.
        ``time_zone``: the booking's own (``datePeriod.timezone``), default the portal's."""
        ts = int(start.timestamp() if isinstance(start, datetime) else start)
        with self.lock:
            booking_id = self.booking.add(
                resource_ids or [1], ts, ts + minutes * 60, time_zone or self.time_zone, name
            )
            if contact_id:
                self.booking.clients[booking_id] = [
                    {"id": int(contact_id), "type": {"code": "CONTACT", "module": "crm"}}
                ]
            if deal_id:
                self.booking.external[booking_id] = [
                    {"entityTypeId": "DEAL", "moduleId": "crm", "value": str(deal_id)}
                ]
            out = self.event_deliveries("ONBOOKINGADD", {"ID": str(booking_id)}, by_user)
        self.send_events(out)
        return booking_id

    def move_booking(self, booking_id: int, start: datetime | float, minutes: int = 60,
                     *, by_user: int | None = 1) -> None:  # fmt: skip
        ts = int(start.timestamp() if isinstance(start, datetime) else start)
        with self.lock:
            row = self.booking.bookings[booking_id]
            row["datePeriod"]["from"]["timestamp"] = ts
            row["datePeriod"]["to"]["timestamp"] = ts + minutes * 60
            out = self.event_deliveries("ONBOOKINGUPDATE", {"ID": str(booking_id)}, by_user)
        self.send_events(out)

    def delete_booking(self, booking_id: int, *, by_user: int | None = 1) -> None:
        with self.lock:
            if not self.booking.delete(booking_id):
                raise KeyError(booking_id)
            out = self.event_deliveries("ONBOOKINGDELETE", {"ID": str(booking_id)}, by_user)
        self.send_events(out)

    def open_chat(
        self, bindings: list[tuple[str, int]], *, connector_id: str = "telegrambot",
        members: list[int] | None = None,
    ) -> OpenLineChat:  # fmt: skip
        """A client writes in from a messenger: an open-line chat bound to CRM items."""
        with self.lock:
            chat = self.openlines.open_chat(bindings, connector_id=connector_id, members=members)
            out = imbot.join_event(self, chat)  # a bot on the line joins and greets
        self.send_events(out)
        return chat

    def client_writes(self, chat_id: int, text: str) -> int:
        """The client answers in the messenger: a message + ONOPENLINEMESSAGEADD."""
        with self.lock:
            chat = self.openlines.chats[chat_id]
            message = self.openlines.add_message(chat, chat.client_user_id, "client", text)
            out = self.event_deliveries(
                "ONOPENLINEMESSAGEADD", self.openlines.event_data(chat, message), None
            )
            out += imbot.message_event(self, chat, message)
        self.send_events(out)
        return message.id

    def operator_writes(self, chat_id: int, user_id: int, text: str) -> int:
        """An operator answers in the chat (after the bot handed it off)."""
        with self.lock:
            chat = self.openlines.chats[chat_id]
            chat.members.add(user_id)
            return self.openlines.add_message(chat, user_id, "operator", text).id

    def employee_posts(self, url: str, payload: dict[str, Any]) -> requests.Response:
        """An employee posts a hand-made event to the app (a FORGED event): any employee's
        app frame holds the portal's ``application_token``, so the form carries the right
        token and the event's usual shape, with whatever chat, message, lead or text the
        employee chose. Sent at once, form-encoded as Bitrix24 sends events, outside the
        delivery queue and without any trace in the portal's own state."""
        form = flatten_php_form(payload)
        return requests.post(url, data=form, timeout=10)

    def message_events(
        self, chat_id: int, message_id: int, text: str, *, author_id: int | None = None
    ) -> dict[str, tuple[str, dict[str, Any]]]:
        """Event name → (URL, payload) of the events a message would cause in the chat
        (``ONOPENLINEMESSAGEADD``, ``ONIMBOTV2MESSAGEADD`` to the bot holding it), for a
        message that need NOT be in the chat: material for :meth:`employee_posts`."""
        with self.lock:
            chat = self.openlines.chats[chat_id]
            message = ChatMessage(message_id, chat.id, author_id or chat.client_user_id,
                                  "client", text, time.time())  # fmt: skip
            out = self.event_deliveries(
                "ONOPENLINEMESSAGEADD", self.openlines.event_data(chat, message), None
            )
            out += imbot.message_event(self, chat, message)
        return {payload["event"]: (url, payload) for url, payload in out}

    def chat_messages(self, chat_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return self.openlines.transcript(chat_id)

    # -- robots -----------------------------------------------------------------------------

    def run_robot(
        self,
        code: str,
        lead_id: int,
        properties: dict[str, Any] | None = None,
        *,
        user_id: int | None = None,
        timeout_duration: int = 660,
        entity: str = "lead",
    ) -> str:
        """An automation rule reaches the robot: POST its HANDLER; returns ``event_token``.

        The POST goes through the delivery queue (call ``emu.wait_idle()``), then
        :meth:`robot_result` shows what the app sent back with ``bizproc.event.send``.
        """
        with self.lock:
            if not self.install_finished:
                raise RuntimeError("the app is not installed (installFinish) on this portal")
            robot = self.robots.get(code)
            if robot is None:
                raise KeyError(f"no robot {code!r} registered")
            workflow_id = f"{secrets.token_hex(7)}.{secrets.randbelow(10**8):08d}"
            activity = "A" + "_".join(str(secrets.randbelow(90000) + 10000) for _ in range(4))
            signature = (
                secrets.token_urlsafe(24)[:32]
                + "."
                + hashlib.sha256(secrets.token_bytes(16)).hexdigest()
            )
            event_token = f"{workflow_id}|{activity}|{signature}"
            use_subscription = "N" if robot.get("USE_SUBSCRIPTION") == "N" else "Y"
            self.robot_calls[event_token] = RobotCall(
                event_token, code, lead_id, dict(properties or {}), use_subscription,
                time.time() + timeout_duration,
            )  # fmt: skip
            auth_user = int(robot.get("AUTH_USER_ID") or 0) or user_id or self.admin_user_id
            pair = self._event_pair(auth_user)
            data = {
                "workflow_id": workflow_id,
                "code": code,
                "document_id": ["crm", "CCrmDocumentLead", f"LEAD_{lead_id}"]
                if entity == "lead"
                else ["crm", "CCrmDocumentDeal", f"DEAL_{lead_id}"],
                "document_type": ["crm", "CCrmDocumentLead", "LEAD"]
                if entity == "lead"
                else ["crm", "CCrmDocumentDeal", "DEAL"],
                "event_token": event_token,
                "properties": dict(properties or {}),
                "use_subscription": use_subscription,
                "timeout_duration": str(timeout_duration),
                "ts": str(int(time.time())),
                "auth": {
                    "access_token": pair.access_token,
                    "refresh_token": pair.refresh_token,
                    "expires": str(int(pair.expires_at)),
                    "server_endpoint": self.server_endpoint,
                    "client_endpoint": self.client_endpoint,
                    "scope": self.scope,
                    "status": self.app_status,
                    "application_token": self.application_token,
                    "expires_in": str(pair.expires_in(time.time())),
                    "domain": self.domain,
                    "member_id": self.member_id,
                    "user_id": str(auth_user),
                },
            }
            handler = robot["HANDLER"]
        self._queue("robot", code, handler, data)
        return event_token

    def robot_result(self, event_token: str) -> dict[str, Any] | None:
        """What the app sent for this run: ``{"return_values", "log_message", "logs"}``."""
        with self.lock:
            call = self.robot_calls.get(event_token)
            if call is None or not call.used:
                return None
            return {
                "return_values": call.return_values,
                "log_message": call.log_message,
                "logs": list(call.logs),
            }

    def expire_event_token(self, event_token: str) -> None:
        with self.lock:
            self.robot_calls[event_token].expires_at = 0

    @property
    def robot_results(self) -> dict[str, dict[str, Any]]:
        """Every answered robot run by event token."""
        with self.lock:
            return {
                t: {"code": c.code, "lead_id": c.lead_id, "return_values": c.return_values,
                    "log_message": c.log_message, "logs": list(c.logs)}
                for t, c in self.robot_calls.items()
                if c.used
            }  # fmt: skip

    # -- placements and pages ----------------------------------------------------------------

    def placement_binding(self, code: str, handler: str | None = None) -> dict[str, Any]:
        with self.lock:
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
        if not self.install_finished:
            raise RuntimeError("widgets are not shown before installFinish")
        binding = self.placement_binding(code, handler)
        query, form = self.frame_payload(
            user_id or self.admin_user_id, code, dict(options or {}), lang
        )
        response = self._post_now("placement", code, binding["handler"], form, query)
        if response is None:
            raise requests.ConnectionError(f"placement handler {binding['handler']} unreachable")
        return response

    def open_app(
        self, path: str = "/app/", *, user_id: int | None = None, lang: str | None = None
    ) -> requests.Response:
        """A user opens the app from the menu: POST with ``PLACEMENT=DEFAULT``."""
        query, form = self.frame_payload(user_id or self.admin_user_id, "DEFAULT", None, lang)
        response = self._post_now("app", "DEFAULT", self.emu.app_url(path), form, query)
        if response is None:
            raise requests.ConnectionError("app page unreachable")
        return response

    # -- CRM helpers used by REST methods and actions ------------------------------------------

    def _seed_statuses(self) -> None:
        en = not self.lang.startswith("ru")
        for status_id, ru, eng, sort, color, success in defaults.LEAD_STATUSES:
            self._add_status("STATUS", status_id, eng if en else ru, sort, color, True, success)
        for i, (status_id, ru, eng) in enumerate(defaults.LEAD_SOURCES):
            self._add_status("SOURCE", status_id, eng if en else ru, (i + 1) * 10, "", True, False)

    def _add_status(
        self, entity: str, status_id: str, name: str, sort: int, color: str, system: bool,
        success: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        row = {
            "ID": str(self.next_status_id),
            "ENTITY_ID": entity,
            "STATUS_ID": status_id,
            "NAME": name,
            "NAME_INIT": name if system else "",
            "SORT": str(sort),
            "SYSTEM": "Y" if system else "N",
            "CATEGORY_ID": None,
            "COLOR": color or None,
            "_success": success,
        }
        self.statuses[self.next_status_id] = row
        self.next_status_id += 1
        return row

    def status_semantics(self, entity: str, status_id: str | None) -> str | None:
        """``S`` for the success stage, ``F`` for stages sorted after it, else None."""
        if not (entity == "STATUS" or entity.startswith("DEAL_STAGE")) or not status_id:
            return None
        rows = [r for r in self.statuses.values() if r["ENTITY_ID"] == entity]
        success = next((r for r in rows if r["_success"]), None)
        row = next((r for r in rows if r["STATUS_ID"] == status_id), None)
        if row is None or success is None:
            return None
        if row is success:
            return "S"
        return "F" if int(row["SORT"]) > int(success["SORT"]) else None

    def lead_status_ids(self) -> list[str]:
        rows = sorted(
            (r for r in self.statuses.values() if r["ENTITY_ID"] == "STATUS"),
            key=lambda r: int(r["SORT"]),
        )
        return [r["STATUS_ID"] for r in rows]

    def uf_names(self) -> list[str]:
        return [uf["FIELD_NAME"] for uf in self.userfields.values()]

    def record_stage(self, lead_id: int, status_id: str, type_id: int, ts: float) -> None:
        sem = self.status_semantics("STATUS", status_id) or "P"
        entry_id = len(self.stage_history) + 1
        entry = {
            "ID": entry_id,
            "TYPE_ID": type_id,
            "OWNER_ID": lead_id,
            "CREATED_TIME": self.now_str(ts),
            "STATUS_ID": status_id,
            "STATUS_SEMANTIC_ID": sem,
        }
        self.stage_history.append(entry)
        self.stage_history_ids.append(entry_id)
        self.stage_history_by_id[entry_id] = entry

    def app_url_host(self) -> str:
        return urlsplit(self.emu.app_base_url).netloc

    def as_str(self, value: Any) -> Any:
        return as_str(value)
