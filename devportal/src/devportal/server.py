"""The emulator's HTTP server: portals' REST, the OAuth server, and the browser pages.

URL layout on ``http://127.0.0.1:<port>``:

* ``/<slug>/rest/<method>[.json]`` — a portal's REST (``client_endpoint``);
* ``/rest/<method>`` — the same, portal found from the token: the b24jssdk in a browser
  frame calls ``http://DOMAIN/rest/…`` and DOMAIN is ``127.0.0.1:<port>`` for all portals;
* ``/oauth/token/`` — the OAuth token endpoint; ``/oauth/rest/app.info`` — the OAuth
  server's REST (``server_endpoint``);
* ``/<slug>/page/install``, ``/<slug>/page/app``, ``/<slug>/page/placement/<CODE>`` —
  HTML pages that frame the app like Bitrix24 does; ``/<slug>/_frame/<command>`` — where
  those pages report what the app's frame asked for.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import datetime
from datetime import UTC
from typing import Any
from urllib.parse import urljoin
from urllib.parse import urlsplit

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map
from werkzeug.routing import Rule
from werkzeug.serving import BaseWSGIServer
from werkzeug.serving import make_server
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response

from b24app.bitrix.payload import MalformedPayload
from b24app.bitrix.payload import parse_php_form
from devportal import chatpage
from devportal import client_pages
from devportal import pages
from devportal.batch import run_batch
from devportal.delivery import DeliveryQueue
from devportal.errors import method_not_found
from devportal.errors import RestError
from devportal.limits import Fault
from devportal.limits import Faults
from devportal.oauth import TokenPair
from devportal.oauth import TokenStore
from devportal.portal import Portal
from devportal.recording import CallRecord
from devportal.recording import DeliveryRecord
from devportal.recording import Recorder
from devportal.rest import all_methods  # noqa: F401  (registers every method)
from devportal.rest import call
from devportal.rest import Ctx
from devportal.rest import ListResult
from devportal.rest import METHODS

FAULT_ERRORS: dict[str, tuple[int, str, str]] = {
    "query_limit": (503, "QUERY_LIMIT_EXCEEDED", "Too many requests"),
    "operation_time_limit": (429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit."),
    "internal_error": (500, "INTERNAL_SERVER_ERROR", "Internal server error"),
    "expired_token": (401, "expired_token", "The access token provided has expired."),
    "invalid_token": (401, "invalid_token", "Unable to get application by token"),
    "overload": (503, "OVERLOAD_LIMIT", "REST API is blocked due to overload."),
}  # fmt: skip
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
}


class _QuietHandler(WSGIRequestHandler):
    """No per-request access log lines (thousands per test run)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/json; charset=utf-8",
        headers={**CORS, **(headers or {})},
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).replace(microsecond=0).isoformat()


def time_block(
    start: float, finish: float, operating: dict[str, float] | None = None
) -> dict[str, Any]:
    block = {
        "start": start,
        "finish": finish,
        "duration": finish - start,
        "processing": finish - start,
        "date_start": _iso(start),
        "date_finish": _iso(finish),
        "operating_reset_at": int(finish) + 600,
        "operating": 0,
    }
    block.update(operating or {})
    return block


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
        self._stopping = threading.Event()
        self._lock = threading.Lock()
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
        self._stopping.set()
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

    @staticmethod
    def _params(request: Request) -> dict[str, Any]:
        params = parse_php_form(request.args.items(multi=True))
        if request.method == "POST":
            if request.mimetype == "application/json":
                body = json.loads(request.get_data(as_text=True) or "{}")
                if not isinstance(body, dict):
                    raise RestError(400, "INVALID_REQUEST", "JSON body must be an object")
                params.update(body)
            else:
                params.update(parse_php_form(request.form.items(multi=True)))
        return params

    # -- OAuth server -----------------------------------------------------------------------

    def _ep_token(self, request: Request) -> Response:
        try:
            params = self._params(request)
        except (MalformedPayload, RestError, ValueError):
            return _json({"error": "invalid_request"}, 400)
        fault = self.faults.take(None, "oauth.token")
        if fault is not None:
            return self._fault_response(fault)
        grant = params.get("grant_type")
        if not grant:
            return _json(
                {"error": "invalid_request", "error_description": 'No "grant_type" parameter found'}, 400
            )  # fmt: skip
        if (
            params.get("client_id") != self.client_id
            or params.get("client_secret") != self.client_secret
        ):
            return _json({"error": "invalid_client"}, 400)
        pair: TokenPair | None
        if grant == "refresh_token":
            if not params.get("refresh_token"):
                return _json(
                    {"error": "invalid_request", "error_description": 'No "refresh_token" parameter found'}, 400
                )  # fmt: skip
            pair = self.tokens.refresh(str(params["refresh_token"]))
        elif grant == "authorization_code":
            pair = self.tokens.redeem_code(str(params.get("code") or ""))
        else:
            return _json({"error": "unsupported_grant_type"}, 400)
        if pair is None:
            return _json({"error": "invalid_grant"}, 400)
        portal = self.portals[pair.slug]
        return _json(
            {
                "access_token": pair.access_token,
                "client_endpoint": portal.client_endpoint,
                "domain": self.host,
                "expires": int(pair.expires_at),
                "expires_in": self.tokens.access_ttl,
                "member_id": portal.member_id,
                "refresh_token": pair.refresh_token,
                "scope": portal.scope,
                "server_endpoint": self.server_endpoint,
                "status": portal.app_status,
                "user_id": pair.user_id,
            }
        )

    def _ep_oauth_rest(self, request: Request, method: str) -> Response:
        if request.method == "OPTIONS":
            return _json({})
        method = method.strip("/").lower().removesuffix(".json")
        try:
            params = self._params(request)
        except (MalformedPayload, RestError, ValueError):
            return _json({"error": "INVALID_REQUEST", "error_description": "Bad request"}, 400)
        if method != "app.info":
            return _json(method_not_found(method).body(), 404)
        pair = self.tokens.by_access(str(params.get("auth") or ""))
        if pair is None:
            return _json({"error": "invalid_token", "error_description": "Unable to get application by token"}, 401)  # fmt: skip
        if self.tokens.is_expired(pair):
            return _json({"error": "expired_token", "error_description": "The access token provided has expired."}, 401)  # fmt: skip
        portal = self.portals[pair.slug]
        return _json(
            {
                "result": {
                    "client_id": self.client_id,
                    "scope": portal.scope,
                    "expires": _iso(pair.expires_at),
                    "install": {
                        "installed": portal.app.install_finished,
                        "version": str(portal.app.version),
                        "status": portal.app_status,
                        "scope": portal.scope,
                        "domain": portal.domain,
                        "uri": f"http://{portal.domain}",
                        "client_endpoint": portal.client_endpoint,
                        "member_id": portal.member_id,
                        "member_type": "user",
                    },
                    "user_id": str(pair.user_id),
                }
            }
        )

    # -- portal REST ------------------------------------------------------------------------

    def _fault_response(self, fault: Fault) -> Response:
        if fault.kind == "hang":
            self._stopping.wait(fault.hang_seconds)
            return _json({"error": "INTERNAL_SERVER_ERROR", "error_description": "Timeout"}, 504)
        status, code, text = FAULT_ERRORS[fault.kind]
        body: dict[str, Any] = {"error": code, "error_description": text}
        if fault.kind == "operation_time_limit":
            body["time"] = {"operating_reset_at": int(time.time()) + 600, "operating": 480.0}
        return _json(body, status)

    def _ep_rest_any(self, request: Request, method: str) -> Response:
        return self._rest(request, None, method)

    def _ep_rest(self, request: Request, slug: str, method: str) -> Response:
        return self._rest(request, slug, method)

    def _ep_rest_hook(self, request: Request, user_id: int, code: str, method: str) -> Response:
        hook = self.webhooks.get(code)
        if hook is None or hook[1] != user_id:
            body = {
                "error": "INVALID_CREDENTIALS",
                "error_description": "Invalid request credentials",
            }
            return _json(body, 401)
        return self._rest(request, hook[0], method, hook_user=user_id)

    def _rest(
        self, request: Request, slug: str | None, method: str, hook_user: int | None = None
    ) -> Response:
        if request.method == "OPTIONS":
            return _json({})
        start = time.time()
        method = method.strip("/").lower().removesuffix(".json")
        state: dict[str, Any] = {
            "slug": slug, "params": {}, "user_id": None, "error": None, "hook_user": hook_user
        }  # fmt: skip
        try:
            response = self._rest_inner(request, method, start, state)
        except RestError as exc:
            state["error"] = exc.code
            response = _json(exc.body(), exc.status)
        if state["error"] is None and response.status_code == 200:
            body = response.get_json(silent=True)
            if isinstance(body, dict) and "error" in body and "result" not in body:
                state["error"] = str(body["error"])  # an error answered with HTTP 200
        self.recorder.add_call(
            CallRecord(
                state["slug"],
                method,
                state["params"],
                response.status_code,
                state["error"],
                start,
                time.time() - start,
                user_id=state["user_id"],
                http_method=request.method,
            )  # fmt: skip
        )
        return response

    def _rest_inner(
        self, request: Request, method: str, start: float, state: dict[str, Any]
    ) -> Response:
        try:
            params = self._params(request)
        except (MalformedPayload, ValueError) as exc:
            self.recorder.count_http(state["slug"])
            raise RestError(400, "INVALID_REQUEST", str(exc)) from exc
        token = str(params.pop("auth", "") or "")
        state["params"] = params
        if state["slug"] is None:
            found = self.tokens.by_access(token)
            state["slug"] = found.slug if found else None
        self.recorder.count_http(state["slug"])
        portal = self.portals.get(state["slug"] or "")
        if portal is None:
            raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        fault = self.faults.take(portal.slug, method)
        if fault is not None:
            if fault.kind != "hang":
                state["error"] = FAULT_ERRORS[fault.kind][1]
            return self._fault_response(fault)
        if not portal.bucket.take():
            raise RestError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")
        if state["hook_user"] is not None:  # an incoming webhook: the URL is the credential
            user_id = state["user_id"] = int(state["hook_user"])
        else:
            user_id = state["user_id"] = self._authenticate(portal, token)
        if portal.operating.blocked(method):
            state["error"] = "OPERATION_TIME_LIMIT"
            return self._operating_limit(portal, method)
        if method == "batch":
            return self._batch(portal, user_id, params, start)
        if method not in METHODS:
            raise method_not_found(method)
        value, outbox = self._run(portal, user_id, method, params)
        portal.bus.send(outbox)
        portal.operating.add(method, portal.operating.cost(method, time.time() - start))
        return self._envelope(value, start, portal.operating.block(method))

    @staticmethod
    def _operating_limit(portal: Portal, method: str) -> Response:
        """429 for a method over its time budget, with its ``time`` block (EN:limits.md)."""
        now = time.time()
        return _json(
            {
                "error": "OPERATION_TIME_LIMIT",
                "error_description": "Method is blocked due to operation time limit.",
                "time": time_block(now, now, portal.operating.block(method)),
            },
            429,
        )

    def _authenticate(self, portal: Portal, token: str) -> int:
        if not token:
            raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        pair = self.tokens.by_access(token)
        if pair is None:
            raise RestError(401, "invalid_token", "Unable to get application by token")
        if pair.slug != portal.slug:
            raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        if self.tokens.is_expired(pair):
            raise RestError(401, "expired_token", "The access token provided has expired.")
        if not portal.app.installed:
            raise RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")
        return pair.user_id

    def _run(
        self, portal: Portal, user_id: int, method: str, params: dict[str, Any]
    ) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
        ctx = Ctx(portal, user_id, params)
        with portal.lock:
            value = call(method, ctx)
        return value, ctx.outbox

    @staticmethod
    def _envelope(value: Any, start: float, operating: dict[str, float] | None = None) -> Response:
        body: dict[str, Any] = {}
        if isinstance(value, ListResult):
            body["result"] = value.result
            if value.next is not None:
                body["next"] = value.next
            if value.total is not None:
                body["total"] = value.total
        else:
            body["result"] = value
        body["time"] = time_block(start, time.time(), operating)
        return _json(body)

    def _batch(
        self, portal: Portal, user_id: int, params: dict[str, Any], start: float
    ) -> Response:
        outbox: list[tuple[str, dict[str, Any]]] = []
        meter = portal.operating
        billed = 0.0

        def run(method: str, sub: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
            nonlocal billed
            t0 = time.time()
            error: str | None = None
            status = 200
            try:
                if method not in METHODS:
                    raise method_not_found(method)
                fault = (
                    self.faults.take(portal.slug, method)
                    if self._inner_fault(portal, method)
                    else None
                )
                if fault is not None:
                    code = FAULT_ERRORS.get(fault.kind, (500, "INTERNAL_SERVER_ERROR", ""))
                    raise RestError(code[0], code[1], code[2])
                if meter.batch_billing != "batch" and meter.blocked(method):
                    raise RestError(429, *FAULT_ERRORS["operation_time_limit"][1:])
                value, events = self._run(portal, user_id, method, sub)
                outbox.extend(events)
                cost = meter.cost(method, time.time() - t0)
                billed += cost
                if meter.batch_billing != "batch":
                    meter.add(method, cost)
                return value, time_block(t0, time.time(), meter.block(method))
            except RestError as exc:
                error, status = exc.code, exc.status
                raise
            finally:
                self.recorder.add_call(
                    CallRecord(
                        portal.slug,
                        method,
                        sub,
                        status,
                        error,
                        t0,
                        time.time() - t0,
                        in_batch=True,
                        user_id=user_id,
                    )  # fmt: skip
                )

        result = run_batch(params, run)
        portal.bus.send(outbox)
        if meter.batch_billing != "commands":
            meter.add("batch", billed)
        return self._envelope(result, start, meter.block("batch"))

    def _inner_fault(self, portal: Portal, method: str) -> bool:
        """Faults aimed at one method also hit that method inside a batch."""
        return any(
            f.method == method and f.matches(portal.slug, method, time.monotonic())
            for f in list(self.faults._faults)
        )

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


def host_of(url: str) -> str:
    return urlsplit(url).netloc
