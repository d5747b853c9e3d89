"""The emulator's HTTP server and registry of portals: many portals plus the OAuth server on
one port, what they recorded, and injected faults.

URL layout on ``http://127.0.0.1:<port>``:

* ``/<slug>/rest/<method>[.json]`` — a portal's REST (``client_endpoint``);
* ``/rest/<method>`` — the same, portal found from the token: the b24jssdk in a browser
  frame calls ``http://DOMAIN/rest/…`` and DOMAIN is ``127.0.0.1:<port>`` for all portals;
* ``/oauth/token/`` — the OAuth token endpoint; ``/oauth/rest/app.info`` — the OAuth
  server's REST (``server_endpoint``);
* ``/<slug>/page/install``, ``/<slug>/page/app``, ``/<slug>/page/placement/<CODE>`` —
  HTML pages that frame the app like Bitrix24 does; ``/<slug>/_frame/<command>`` — where
  those pages report what the app's frame asked for.

The endpoints are thin: the REST surface is :mod:`devportal.rest_server`, the OAuth server's
:mod:`devportal.oauth_server`, the pages :mod:`devportal.pages`, :mod:`devportal.chatpage`
and :mod:`devportal.client_pages`.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any
from urllib.parse import urljoin

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map
from werkzeug.routing import Rule
from werkzeug.serving import BaseWSGIServer
from werkzeug.serving import make_server
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from devportal import chatpage
from devportal import client_pages
from devportal import oauth_server
from devportal import pages
from devportal import staff_pages
from devportal.delivery import DeliveryQueue
from devportal.limits import Fault
from devportal.limits import Faults
from devportal.oauth import TokenStore
from devportal.portal import Portal
from devportal.recording import CallRecord
from devportal.recording import DeliveryRecord
from devportal.recording import Recorder
from devportal.rest_server import RestServer
from devportal.wire import json_response


class _QuietHandler(WSGIRequestHandler):
    """No per-request access log lines (thousands per test run)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class DevPortal:
    """A loopback Bitrix24: many portals plus the OAuth server, on one port.

    ``app_base_url`` is the app's public URL: relative handler paths are joined to it and
    robot handlers must be on its host. Use as a context manager or ``start()``/``stop()``.
    """

    def __init__(
        self,
        client_id: str = "local.b24app",
        client_secret: str = "change-me",
        app_base_url: str = "http://127.0.0.1:5000",
        *,
        rate: float = 2.0,
        burst: int = 50,
        host: str = "127.0.0.1",
        port: int = 0,
        delivery_workers: int = 4,
        robot_delivery_workers: int = 2,
        delivery_timeout: float = 10.0,
        access_ttl: int = 3600,
        idle_timeout: float = 10.0,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.app_base_url = app_base_url.rstrip("/")
        self.rate = rate
        self.burst = burst
        self.idle_timeout = idle_timeout  # wait_idle()'s default (tests: their deadline)
        self._bind = (host, port)
        self.recorder = Recorder()
        self.tokens = TokenStore(access_ttl=access_ttl)
        self.faults = Faults()
        self.delivery = DeliveryQueue(
            self.recorder,
            workers=delivery_workers,
            robot_workers=robot_delivery_workers,
            timeout=delivery_timeout,
        )
        self.portals: dict[str, Portal] = {}
        # Incoming webhooks: code → (portal slug, user id).
        self.webhooks: dict[str, tuple[str, int]] = {}
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()  # a hanging fault's answer ends at stop()
        self._lock = threading.Lock()
        self.rest = RestServer(self)
        self._routes = Map(
            [
                Rule("/oauth/token/", endpoint="token", strict_slashes=False),
                Rule("/oauth/rest/<path:method>", endpoint="oauth_rest"),
                Rule("/rest/<int:user_id>/<code>/<path:method>", endpoint="rest_hook"),
                Rule("/rest/<path:method>", endpoint="rest_any"),
                Rule("/<slug>/rest/<path:method>", endpoint="rest"),
                Rule("/<slug>/page/install", endpoint="page_install"),
                Rule("/<slug>/page/app", endpoint="page_app"),
                Rule("/<slug>/page/placement/<code>", endpoint="page_placement"),
                Rule("/<slug>/_frame/<command>", endpoint="frame", methods=["POST"]),
                Rule("/<slug>/page/chat", endpoint="page_chat"),
                Rule("/<slug>/_chat/<path:path>", endpoint="chat", methods=["GET", "POST"]),
                Rule("/<slug>/page/client", endpoint="page_client", methods=["GET", "POST"]),
                Rule(
                    "/<slug>/page/client/<int:chat_id>",
                    endpoint="page_client_chat",
                    methods=["GET", "POST"],
                ),  # fmt: skip
                Rule(
                    "/<slug>/page/staff/<int:user_id>",
                    endpoint="page_staff",
                    methods=["GET", "POST"],
                ),  # fmt: skip
                Rule("/", endpoint="index"),
            ]
        )

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> DevPortal:
        if self._server is not None:
            return self
        self._server = make_server(
            self._bind[0], self._bind[1], self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="devportal-http", daemon=True
        )
        self._thread.start()
        self.delivery.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.delivery.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> DevPortal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("DevPortal is not started")
        return int(self._server.server_port)

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>`` — every portal's DOMAIN and the OAuth server's host."""
        return f"{self._bind[0]}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def server_endpoint(self) -> str:
        return f"{self.url}/oauth/rest/"

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth/token/"

    def app_url(self, path: str) -> str:
        """An app URL: absolute URLs pass through, paths are joined to ``app_base_url``."""
        if path.startswith(("http://", "https://")):
            return path
        return urljoin(self.app_base_url + "/", path.lstrip("/"))

    # -- portals ----------------------------------------------------------------------------

    def create_portal(self, slug: str = "portal", **options: Any) -> Portal:
        """A new portal (app not installed). Options: see :class:`Portal`."""
        enterprise = "_ent" in f"_{options.get('license', '')}"  # ru_ent250, de_ent10000
        options.setdefault("rate", 5.0 if enterprise else self.rate)
        options.setdefault("burst", 250 if enterprise else self.burst)
        with self._lock:
            if slug in self.portals:
                raise ValueError(f"portal {slug!r} exists")
            portal = Portal(self, slug, **options)
            self.portals[slug] = portal
        return portal

    def portal(self, slug: str) -> Portal:
        return self.portals[slug]

    def add_webhook(self, portal: Portal | str, user_id: int = 1) -> str:
        """An incoming webhook of ``portal`` acting as ``user_id``: its URL,
        ``http://DOMAIN/rest/<user_id>/<code>/`` (Bitrix24's form, no OAuth token needed)."""
        slug = self._slug(portal) or ""
        code = secrets.token_hex(8)
        self.webhooks[code] = (slug, int(user_id))
        return f"{self.url}/rest/{int(user_id)}/{code}/"

    def portal_by_member(self, member_id: str) -> Portal | None:
        return next((p for p in self.portals.values() if p.member_id == member_id), None)

    # -- observation ------------------------------------------------------------------------

    @staticmethod
    def _slug(portal: Portal | str | None) -> str | None:
        return portal.slug if isinstance(portal, Portal) else portal

    def calls(
        self,
        method: str | None = None,
        portal: Portal | str | None = None,
        *,
        error: str | None = None,
        in_batch: bool | None = None,
    ) -> list[CallRecord]:
        """REST calls recorded so far (batch commands appear with ``in_batch=True``)."""
        return self.recorder.calls(method, self._slug(portal), error=error, in_batch=in_batch)

    def http_requests(self, portal: Portal | str | None = None) -> int:
        """HTTP requests to portals' REST (a batch counts once)."""
        return self.recorder.http_requests(self._slug(portal))

    def token_refreshes(self, portal: Portal | str | None = None) -> int:
        slug = self._slug(portal)
        counts = self.tokens.refresh_count
        return sum(counts.values()) if slug is None else counts.get(slug, 0)

    def deliveries(
        self, kind: str | None = None, name: str | None = None, portal: Portal | str | None = None
    ) -> list[DeliveryRecord]:
        """POSTs the portals made to the app (events, robot calls, installer, widgets)."""
        return self.recorder.deliveries(kind, name, self._slug(portal))

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued event/robot delivery has been answered (at most
        ``timeout`` seconds, default ``idle_timeout``)."""
        return self.delivery.wait_idle(self.idle_timeout if timeout is None else timeout)

    def inject_fault(self, kind: str, **options: Any) -> Fault:
        """Shortcut for ``faults.inject``; ``portal=`` may be a Portal."""
        if "portal" in options:
            options["portal"] = self._slug(options["portal"])
        return self.faults.inject(kind, **options)

    # -- WSGI -------------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            endpoint, args = self._routes.bind_to_environ(environ).match()
            response = getattr(self, f"_ep_{endpoint}")(request, **args)
        except HTTPException as exc:
            response = exc.get_response(environ)
        return response(environ, start_response)

    def _ep_index(self, request: Request) -> Response:
        names = ", ".join(sorted(self.portals)) or "none"
        return Response(f"b24app devportal; portals: {names}\n", content_type="text/plain")

    # -- OAuth server -----------------------------------------------------------------------

    def _ep_token(self, request: Request) -> Response:
        return oauth_server.token(self, request)

    def _ep_oauth_rest(self, request: Request, method: str) -> Response:
        return oauth_server.rest(self, request, method)

    # -- portal REST ------------------------------------------------------------------------

    def _ep_rest_any(self, request: Request, method: str) -> Response:
        return self.rest.handle(request, None, method)

    def _ep_rest(self, request: Request, slug: str, method: str) -> Response:
        return self.rest.handle(request, slug, method)

    def _ep_rest_hook(self, request: Request, user_id: int, code: str, method: str) -> Response:
        hook = self.webhooks.get(code)
        if hook is None or hook[1] != user_id:
            body = {
                "error": "INVALID_CREDENTIALS",
                "error_description": "Invalid request credentials",
            }
            return json_response(body, 401)
        return self.rest.handle(request, hook[0], method, hook_user=user_id)

    # -- pages (browser) --------------------------------------------------------------------

    def _ep_page_install(self, request: Request, slug: str) -> Response:
        return pages.install_page(self, self.portals[slug], request)

    def _ep_page_app(self, request: Request, slug: str) -> Response:
        return pages.app_page(self, self.portals[slug], request)

    def _ep_page_placement(self, request: Request, slug: str, code: str) -> Response:
        return pages.placement_page(self, self.portals[slug], request, code)

    def _ep_frame(self, request: Request, slug: str, command: str) -> Response:
        return pages.frame_message(self, self.portals[slug], request, command)

    def _ep_page_chat(self, request: Request, slug: str) -> Response:
        return chatpage.page(self.portals[slug])

    def _ep_chat(self, request: Request, slug: str, path: str) -> Response:
        return chatpage.handle(self.portals[slug], request, path)

    def _ep_page_client(self, request: Request, slug: str) -> Response:
        return client_pages.client_index(self.portals[slug], request)

    def _ep_page_client_chat(self, request: Request, slug: str, chat_id: int) -> Response:
        return client_pages.client_chat(self.portals[slug], request, chat_id)

    def _ep_page_staff(self, request: Request, slug: str, user_id: int) -> Response:
        return staff_pages.staff_dialog(self.portals[slug], request, user_id)
