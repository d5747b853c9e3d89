"""One emulated Bitrix24 portal: the registry of its areas (as moto keeps one backend per
service), its identity and URLs, and the tokens of its users.

Each area owns its state and the actions a person or the portal itself performs there:
:class:`~devportal.people.People`, :class:`~devportal.lifecycle.AppLifecycle` (install,
update, uninstall, app options), :class:`~devportal.eventbus.EventBus` (bindings and
deliveries), :class:`~devportal.crm.Crm`, :class:`~devportal.booking.Bookings`,
:class:`~devportal.chats.Chats` (open lines), :class:`~devportal.imbot.ImBots`,
:class:`~devportal.bizproc.Bizproc` (robots, workflows) and
:class:`~devportal.widgets.Widgets` (placements, app frames). The REST surface is apart
(:mod:`devportal.rest`, one module per area).

State is kept in memory and guarded by one re-entrant lock per portal. Actions that make
the portal call the app build the form payloads with the lock held and hand them to the
delivery queue *after* releasing it, so the app may call back.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from devportal import defaults
from devportal.bizproc import Bizproc
from devportal.bizproc import RobotCall
from devportal.booking import Bookings
from devportal.chats import Chats
from devportal.crm import Crm
from devportal.eventbus import EventBus
from devportal.imbot import ImBots
from devportal.leads import as_str
from devportal.leads import fmt_dt
from devportal.lifecycle import AppLifecycle
from devportal.lifecycle import InstallResult
from devportal.limits import LeakyBucket
from devportal.limits import OperatingTime
from devportal.oauth import TokenPair
from devportal.people import People
from devportal.shortcuts import Shortcuts
from devportal.tasks import Tasks
from devportal.waitlist import WaitlistStore
from devportal.widgets import php_json
from devportal.widgets import Widgets

if TYPE_CHECKING:
    from devportal.server import DevPortal

__all__ = ["InstallResult", "Portal", "RobotCall", "php_json"]


class Portal(Shortcuts):
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
        self.member_id = secrets.token_hex(16)
        self.app_status = app_status
        self.license = license
        self.scope = scope
        self.admin_user_id = admin_user_id
        self.lock = threading.RLock()
        self.bucket = LeakyBucket(rate, burst)
        self.operating = OperatingTime(operating_limit, batch_billing=batch_billing)
        # The areas (the registry): each owns its state.
        self.people = People(self.lock, admin_user_id, users, departments)
        self.app = AppLifecycle(self)
        self.bus = EventBus(self)
        self.crm = Crm(self, crm_mode)
        self.crm.seed_pipeline()
        self.booking = Bookings(self)
        self.waitlist = WaitlistStore()  # booking.v1.waitlist.* (devportal/rest/waitlist.py)
        self.chats = Chats(self)
        self.tasks_area = Tasks(self)  # tasks.task.* (devportal/rest/tasks.py)
        self.imbot = ImBots()
        self.bizproc = Bizproc(self)
        self.widgets = Widgets(self)
        self._bind_shortcuts()

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

    def app_url_host(self) -> str:
        return urlsplit(self.emu.app_base_url).netloc

    def as_str(self, value: Any) -> Any:
        return as_str(value)

    # -- tokens of its users (the OAuth server is the emulator's: devportal.oauth) ------------

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
