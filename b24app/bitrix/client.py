"""The REST client for one portal: tokens, limits, retries, redirects, batch, paging, logs.

One :class:`BitrixClient` per portal (``Services.bitrix(member_id)``); it may be shared by
threads. Its state lives outside the process on purpose:

* tokens in the token store (the DB), written with a compare-and-set on ``version``;
* the refresh is serialised per portal by a Redis lock, because refresh tokens rotate and
  two workers refreshing at once would leave one of them holding a dead pair;
* the rate limit is a Redis leaky bucket shared by all processes (:mod:`.ratelimit`);
* an ``OPERATION_TIME_LIMIT`` block for a method is a Redis key, so every worker waits;
* the portal's plan (bucket size), the per-method ``time.operating`` figures and the urgent
  callers' claim on the bucket live in Redis too (:mod:`.budget`).

Nothing here imports Flask.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any
from typing import Protocol
from urllib.parse import urljoin
from urllib.parse import urlsplit

import requests
from redis import Redis
from redis.exceptions import LockError
from redis.exceptions import RedisError

from b24app import metrics
from b24app.bitrix.budget import command_methods
from b24app.bitrix.budget import current_priority
from b24app.bitrix.budget import limits_for
from b24app.bitrix.budget import load_plan
from b24app.bitrix.budget import OperatingMeter
from b24app.bitrix.budget import Priority
from b24app.bitrix.errors import AuthRevoked
from b24app.bitrix.errors import BitrixError
from b24app.bitrix.errors import from_envelope
from b24app.bitrix.errors import is_error_envelope
from b24app.bitrix.errors import PortalUnavailable
from b24app.bitrix.errors import RateLimited
from b24app.bitrix.errors import REFRESHABLE_CODES
from b24app.bitrix.errors import TokenExpired
from b24app.bitrix.errors import TransportError
from b24app.bitrix.oauth import check_endpoint
from b24app.bitrix.oauth import InsecureEndpoint
from b24app.bitrix.oauth import is_trusted_oauth_server
from b24app.bitrix.oauth import oauth_app_info
from b24app.bitrix.oauth import refresh_tokens
from b24app.bitrix.oauth import USER_AGENT
from b24app.bitrix.payload import encode_php_form
from b24app.bitrix.ratelimit import LeakyBucket
from b24app.config import Settings
from b24app.logs import mask_secrets
from b24app.storage.portals import PortalAuth

log = logging.getLogger(__name__)

PAGE_SIZE = 50  # fixed by Bitrix24 for every list method
MAX_BATCH = 50  # commands per ``batch`` request
LOG_BODY_LIMIT = 4096  # characters of request/response kept in a REST log row
MAX_REDIRECTS = 3
BUCKET_HEADROOM = 2  # slots kept free below ``rest_burst`` (see __init__)
INTERACTIVE_RESERVE_DIVISOR = 5  # a fifth of the bucket is for interactive callers only
UNAVAILABLE_STATUSES = ("uninstalled", "reauth_required")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# How long a client reuses the token pair it read (or was handed) before reading the store
# again: a job's few calls then cost one DB read, not one each. A pair another worker rotated
# meanwhile is refused as expired and the refresh path re-reads the store (at most one extra
# request); a long-lived client still sees a rotation within this time.
AUTH_REUSE_S = 10.0

LogSink = Callable[[dict[str, Any]], None]


@dataclass
class _Tries:
    """What one call has spent: retries (of ``retries``), token refreshes, redirects."""

    retries: int
    attempt: int = 0
    refreshes: int = 0
    redirects: int = 0


class TokenStore(Protocol):
    """What the client needs from token storage (``storage.portals.DbTokenStore``)."""

    def load(self, member_id: str) -> PortalAuth | None: ...

    def save_refreshed(
        self,
        member_id: str,
        expected_version: int,
        access_token: str,
        refresh_token: str,
        expires_in: int,
        client_endpoint: str | None = None,
    ) -> bool: ...

    def mark_reauth_required(self, member_id: str) -> None: ...


@dataclass
class BatchResult:
    """The merged sections of one or more ``batch`` answers, keyed by command id.

    Bitrix sends empty sections as ``[]``; here they are always dicts.
    """

    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    next: dict[str, int] = field(default_factory=dict)

    def error(self, cmd_id: str) -> BitrixError | None:
        """The failed command's error as an exception (not raised), or None."""
        body = self.errors.get(cmd_id)
        return None if body is None else from_envelope(body, None, cmd_id)

    def raise_first_error(self) -> None:
        """Raise the first command error, if any (for callers that need all to succeed)."""
        for cmd_id in self.errors:
            error = self.error(cmd_id)
            if error is not None:
                raise error


def _section(value: Any) -> dict[str, Any]:
    # PHP json_encode: empty array → [], keys 0..n-1 → list, otherwise an object.
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)}
    return {}


def encode_command(method: str, params: Mapping[str, Any] | None) -> str:
    """One ``batch`` command: ``method?`` + PHP ``http_build_query`` of the params."""
    query = encode_php_form(dict(params)) if params else ""
    return f"{method}?{query}" if query else method


def _rows(result: Any, items_key: str | None) -> list[dict[str, Any]]:
    if items_key is not None and isinstance(result, dict):
        result = result.get(items_key)
    if isinstance(result, dict):  # some list methods answer {"0": {...}, "1": {...}}
        result = list(result.values())
    return list(result) if isinstance(result, list) else []


def _masked(text: str) -> str:
    """Mask token-like values, then cut to ``LOG_BODY_LIMIT`` (masking a bounded prefix
    keeps a 1 MB list answer from costing a regex pass over all of it)."""
    text = mask_secrets(text[: LOG_BODY_LIMIT * 4])
    return text if len(text) <= LOG_BODY_LIMIT else text[:LOG_BODY_LIMIT] + "…[truncated]"


def _count(metric: str, member_id: str, outcome: str | None = None) -> None:
    # member_id is not a label (tenant enumeration, unbounded cardinality): see b24app.metrics
    if metric == "calls":
        metrics.REST_CALLS.labels(outcome=outcome or "ok").inc()
    else:
        metrics.REST_LIMIT_HITS.inc()


class BitrixClient:
    """REST client for one portal (``member_id``), built by ``Services.bitrix``.

    Args:
        member_id: the tenant key.
        tokens: the token store (load / compare-and-set save / mark re-auth required).
        redis: shared Redis for the refresh lock, the leaky bucket and method blocks.
        settings: ``rest_timeout``, ``rest_rate``, ``rest_burst``, ``rest_max_retries``,
            ``client_id``/``client_secret``, ``allow_insecure_endpoints``.
        log_sink: receives one masked ``RestLog``-shaped row per HTTP request.
        session: a ``requests.Session`` to reuse (tests pass one; default: own session).
        sleep: injected for tests; ``backoff_base``/``backoff_cap`` shape the retry delays;
        max_operating_wait: longest in-call wait for an ``OPERATION_TIME_LIMIT`` block
            (longer blocks raise :class:`RateLimited` so a job can be rescheduled instead).
        interactive: may use the whole bucket (a person waits for the answer); other clients
            stop a fifth of the burst lower, so interactive calls pass first under load.
        auth: the portal's tokens as the caller just read them (a job that loaded the portal
            row anyway): the first call needs no read of the token store.
    """

    def __init__(
        self,
        member_id: str,
        tokens: TokenStore,
        redis: Redis,
        settings: Settings,
        log_sink: LogSink | None = None,
        session: requests.Session | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_operating_wait: float = 60.0,
        interactive: bool = False,
        auth: PortalAuth | None = None,
    ) -> None:
        self.member_id = member_id
        self._auth: tuple[float, PortalAuth] | None = None
        if auth is not None and auth.member_id == member_id:
            self._auth = (time.monotonic(), auth)
        self.tokens = tokens
        self.redis = redis
        self.settings = settings
        self.log_sink = log_sink
        self.session = session or requests.Session()
        self.sleep = sleep
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_operating_wait = max_operating_wait
        # Keep a couple of slots of headroom below the portal's burst: the slot is taken here,
        # but the portal counts the request when it arrives, and threads/network reorder
        # arrivals. Two slots absorb 1 s of jitter at 2 req/s.
        plan = load_plan(redis, member_id)
        rate, total = limits_for(plan.family if plan is not None else None, settings)
        burst = max(1, total - BUCKET_HEADROOM)
        if not interactive:
            # Background work leaves the top of the shared bucket to interactive callers
            # (the chatbot answering a person): when the portal's budget is short, answers
            # go first and background jobs wait a little longer.
            burst = max(1, burst - total // INTERACTIVE_RESERVE_DIVISOR)
        # Within background work, bulk reads leave a share to urgent calls (issue 14).
        reserve = int(burst * settings.rest_bulk_reserve) if settings.rest_priorities else 0
        self.bucket = LeakyBucket(redis, member_id, rate, burst, sleep=sleep, reserve=reserve)
        self.meter = OperatingMeter(redis, member_id, settings.rest_operating_limit)

    # -- public API -------------------------------------------------------------------------

    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call ``method`` and return its ``result``; raises a :class:`BitrixError` subclass."""
        return self.call_raw(method, params).get("result")

    def call_raw(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Call ``method`` and return the whole envelope (``result``, ``total``, ``next``,
        ``time``)."""
        return self._request(method, dict(params or {}))

    def batch(
        self, commands: Mapping[str, tuple[str, Mapping[str, Any] | None]], halt: bool = False
    ) -> BatchResult:
        """Run ``{cmd_id: (method, params)}`` through ``batch``, 50 commands per request.

        Per-command failures land in ``BatchResult.errors`` (``batch`` itself answers 200);
        with ``halt`` the first failing chunk stops the rest. ``$result[cmd][…]`` references
        work within one chunk of 50 only.
        """
        merged = BatchResult()
        items = list(commands.items())
        for i in range(0, len(items), MAX_BATCH):
            part = self._batch_request(dict(items[i : i + MAX_BATCH]), halt)
            merged.results.update(part.results)
            merged.errors.update(part.errors)
            merged.totals.update(part.totals)
            merged.next.update(part.next)
            if halt and part.errors:
                break
        return merged

    def list_all(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        items_key: str | None = None,
        id_field: str = "ID",
    ) -> Iterator[dict[str, Any]]:
        """Every row of a list method, paging with ``start``/``next`` (one request per page).

        Offset paging shifts when rows are added or deleted meanwhile; rows already yielded
        (by ``id_field``) are not yielded twice. For big exports use :meth:`iter_fast`.
        ``items_key`` is ``"items"`` for ``crm.item.list`` (``result: {items: […]}``).
        """
        base = dict(params or {})
        seen: set[str] = set()
        start = 0
        while True:
            envelope = self.call_raw(method, {**base, "start": start})
            rows = _rows(envelope.get("result"), items_key)
            for row in rows:
                has_id = isinstance(row, dict) and row.get(id_field) is not None
                key = str(row[id_field]) if has_id else None
                if key is not None and key in seen:
                    continue
                if key is not None:
                    seen.add(key)
                yield row
            nxt = envelope.get("next")
            if nxt is None or not rows:
                return
            start = int(nxt)

    def iter_fast(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        id_field: str = "ID",
        items_key: str | None = None,
        batch_pages: int = MAX_BATCH,
    ) -> Iterator[dict[str, Any]]:
        """Every row, in ``id_field`` order, the fast way Bitrix24 recommends for big exports.

        Each page is ``order[ID]=ASC``, ``filter[>ID]=<last seen>``, ``start=-1`` (no
        ``total`` count). ``batch_pages`` such pages go in ONE ``batch`` request, chained:
        page *k* filters on ``$result[p{k-1}][49][ID]`` — the last row of page *k-1* — so
        one HTTP request reads up to 50 × 50 = 2,500 rows (20,000 leads: 9 requests instead
        of 400). A page shorter than 50 ends the export: the commands after it referenced a
        row that does not exist, so their answers (errors, or whatever the portal made of
        the unresolved reference) are ignored. A failed page in the middle restarts the
        chain from the last row seen; a failure of the first page raises.
        """
        if not 1 <= batch_pages <= MAX_BATCH:
            raise ValueError(f"batch_pages must be 1..{MAX_BATCH}")
        base = dict(params or {})
        flt = dict(base.pop("filter", None) or {})
        gt_key = f">{id_field}"
        last: int = int(flt.pop(gt_key, 0) or 0)
        select = base.get("select")
        if select and "*" not in select and id_field not in select:
            base["select"] = [*select, id_field]
        base["order"] = {id_field: "ASC"}
        base["start"] = -1
        ref_path = f"[{items_key}]" if items_key else ""

        def page_params(bound: int | str) -> dict[str, Any]:
            return {**base, "filter": {**flt, gt_key: bound}}

        while True:
            if batch_pages == 1:
                envelope = self.call_raw(method, page_params(last))
                rows = _rows(envelope.get("result"), items_key)
                yield from rows
                if len(rows) < PAGE_SIZE:
                    return
                last = int(rows[-1][id_field])
                continue
            commands: dict[str, tuple[str, Mapping[str, Any] | None]] = {}
            for k in range(batch_pages):
                bound: int | str = (
                    last if k == 0 else f"$result[p{k - 1}]{ref_path}[{PAGE_SIZE - 1}][{id_field}]"
                )
                commands[f"p{k}"] = (method, page_params(bound))
            answer = self._batch_request(commands, halt=False)
            for k in range(batch_pages):
                cmd_id = f"p{k}"
                if cmd_id in answer.errors:
                    if k == 0:
                        raise from_envelope(answer.errors[cmd_id], None, method)
                    break  # restart the chain from ``last`` with a new request
                rows = _rows(answer.results.get(cmd_id), items_key)
                fresh = [r for r in rows if int(r[id_field]) > last]
                yield from fresh
                if fresh:
                    last = int(fresh[-1][id_field])
                if len(rows) < PAGE_SIZE:
                    return

    # -- one HTTP request, with everything around it ----------------------------------------

    def _load(self, *, fresh: bool = False) -> PortalAuth:
        """The stored tokens; reused for :data:`AUTH_REUSE_S` unless ``fresh`` (the refresh
        path always re-reads: another worker may have stored a newer pair)."""
        cached = self._auth
        if not fresh and cached is not None and time.monotonic() - cached[0] < AUTH_REUSE_S:
            auth: PortalAuth | None = cached[1]
        else:
            auth = self.tokens.load(self.member_id)
            self._auth = None if auth is None else (time.monotonic(), auth)
        if auth is None:
            raise PortalUnavailable("PORTAL_UNKNOWN", "no such portal", None)
        if auth.status in UNAVAILABLE_STATUSES:
            raise PortalUnavailable(
                "PORTAL_" + auth.status.upper(), f"portal is {auth.status}", None
            )
        if not auth.access_token and not auth.refresh_token:
            raise PortalUnavailable("NO_TOKENS", "no tokens stored for the portal", None)
        return auth

    def _batch_request(
        self, commands: Mapping[str, tuple[str, Mapping[str, Any] | None]], halt: bool
    ) -> BatchResult:
        cmd = {str(cid): encode_command(m, p) for cid, (m, p) in commands.items()}
        body = self.call("batch", {"halt": 1 if halt else 0, "cmd": cmd})
        body = body if isinstance(body, dict) else {}
        return BatchResult(
            results=_section(body.get("result")),
            errors=_section(body.get("result_error")),
            totals={k: int(v) for k, v in _section(body.get("result_total")).items()},
            next={k: int(v) for k, v in _section(body.get("result_next")).items()},
        )

    def _backoff(self, attempt: int) -> float:
        # Full jitter (AWS architecture blog): spreads retries of many workers apart.
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * (2**attempt)))

    def _op_block_key(self, method: str) -> str:
        return f"b24app:oplimit:{self.member_id}:{method}"

    def _wait_operating_block(self, method: str) -> None:
        """Honour an ``OPERATION_TIME_LIMIT`` block another worker recorded for ``method``."""
        self._wait_operating_blocks([method])

    def _wait_operating_blocks(self, methods: list[str]) -> None:
        """The same for several methods (a batch and its commands), their blocks read in one
        Redis round trip; waits out the longest."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            for name in methods:
                pipe.pttl(self._op_block_key(name))
            ttls = pipe.execute()
        except RedisError:
            return
        blocked = [(ttl, name) for ttl, name in zip(ttls, methods, strict=False) if ttl and ttl > 0]
        if not blocked:
            return
        ttl_ms, method = max(blocked)
        wait = ttl_ms / 1000
        if wait > self.max_operating_wait:
            raise RateLimited(
                "OPERATION_TIME_LIMIT",
                "method blocked by its time budget",
                429,
                method=method,
                retry_after=wait,
            )
        self.sleep(wait)

    def _block_method(self, method: str, body: Mapping[str, Any]) -> tuple[float, bool]:
        """Record the block until ``time.operating_reset_at`` for every worker; return the
        seconds left and whether the block was stored in Redis."""
        timing = body.get("time") if isinstance(body.get("time"), dict) else {}
        reset_at = timing.get("operating_reset_at") if timing else None
        try:
            wait = float(reset_at) - time.time() if reset_at else 60.0
        except (TypeError, ValueError):
            wait = 60.0
        wait = max(1.0, wait)
        try:
            self.redis.set(self._op_block_key(method), "1", px=int(wait * 1000))
        except RedisError:
            return wait, False
        return wait, True

    # -- the method time budget and priorities (issue 14; see .budget) ----------------------

    def slot_wait(self) -> float:
        """Seconds until a request of the current priority could take a slot of the portal's
        bucket (0.0: now); takes nothing. A caller that would rather not hold its worker
        while it waits (the coalescing drainer) reschedules itself instead."""
        return self.bucket.peek(priority=self._priority())

    def _priority(self) -> int:
        return int(current_priority() if self.settings.rest_priorities else Priority.NORMAL)

    def _pace_operating(self, method: str, params: Mapping[str, Any]) -> None:
        """Hold a call back while its method (or, for a batch, ``batch`` and any inner
        method) nears its time budget, instead of running into ``OPERATION_TIME_LIMIT``."""
        inner = list(dict.fromkeys(command_methods(params))) if method == "batch" else []
        names = [method, *(n for n in inner if n != method)]
        self._wait_operating_blocks(names)
        wait = self.meter.max_delay(names)
        if wait <= 0:
            return
        if wait > self.max_operating_wait:
            raise RateLimited(
                "OPERATION_TIME_LIMIT",
                "method close to its time budget",
                429,
                method=method,
                retry_after=wait,
            )
        log.info("portal %s: %s near its time budget, waiting %.1fs", self.member_id, method, wait)
        self.sleep(wait)

    def _note_operating(
        self, method: str, params: Mapping[str, Any], body: Mapping[str, Any]
    ) -> None:
        """Keep the answer's ``time.operating`` per method; for a batch also each command's
        (``result_time``), and block an inner method the batch reported over its budget."""
        self.meter.record(method, body.get("time"))
        if method != "batch" or not isinstance(body.get("result"), dict):
            return
        cmd = params.get("cmd")
        ids = [str(k) for k in cmd] if isinstance(cmd, dict) else []
        names = dict(zip(ids, command_methods(params), strict=False))
        result = body["result"]
        for cmd_id, timing in _section(result.get("result_time")).items():
            if cmd_id in names:
                self.meter.record(names[cmd_id], timing)
        for cmd_id, error in _section(result.get("result_error")).items():
            # An inner command over its budget blocks its method for every worker — when
            # the answer says until when; without a ``time`` block the command's error is
            # the caller's, retried like before (a guessed 10-minute block would stall it).
            if cmd_id in names and isinstance(error, dict):
                timing = error.get("time")
                if error.get("error") == "OPERATION_TIME_LIMIT" and isinstance(timing, dict):
                    if timing.get("operating_reset_at"):
                        self._block_method(names[cmd_id], {"time": timing})

    def _request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        auth = self._load()
        tries = _Tries(max(0, int(self.settings.rest_max_retries)))
        while True:
            self._pace_operating(method, params)  # the method's (and commands') blocks too
            if not auth.access_token:
                auth = self._refresh(auth)
                tries.refreshes += 1
            self.bucket.wait(priority=self._priority())
            status, body, location = self._send(auth, method, params)

            if status in REDIRECT_STATUSES and location and tries.redirects < MAX_REDIRECTS:
                tries.redirects += 1
                auth = self._follow_redirect(auth, method, location)
                self._auth = (time.monotonic(), auth)
                continue

            if status == 0:  # no answer at all
                if self._back_off(tries):
                    continue
                _count("calls", self.member_id, "network")
                raise TransportError("NETWORK_ERROR", str(body), None, method=method)

            if is_error_envelope(body):
                error = from_envelope(body, status, method)
                if error.code in REFRESHABLE_CODES and tries.refreshes < 2:
                    tries.refreshes += 1
                    auth = self._refresh(auth)
                    continue
                self._wait_or_raise(error, status, body, method, tries)
                continue

            if status >= 500 and self._back_off(tries):
                continue
            if status != 200 or not isinstance(body, dict):
                _count("calls", self.member_id, "error")
                raise TransportError(
                    f"HTTP_{status}", "unexpected answer without an error envelope", status,
                    method=method,
                )  # fmt: skip
            _count("calls", self.member_id, "ok")
            self._note_operating(method, params, body)
            return body

    def _back_off(self, tries: _Tries) -> bool:
        """Sleep before the next retry; False when no retry is left."""
        if tries.attempt >= tries.retries:
            return False
        self.sleep(self._backoff(tries.attempt))
        tries.attempt += 1
        return True

    def _wait_or_raise(
        self, error: BitrixError, status: int, body: Any, method: str, tries: _Tries
    ) -> None:
        """An error envelope: wait as the error asks and return (the caller retries), or raise."""
        code = error.code
        if code == "QUERY_LIMIT_EXCEEDED":
            _count("limit", self.member_id)
            # The portal's bucket is full, whatever ours said (it is shared with other
            # clients): pace from "full" at the drain rate, shared by every process, rather
            # than each retrying on its own schedule.
            if tries.attempt < tries.retries and not self.settings.rest_adaptive:
                self.sleep(self._backoff(tries.attempt) + 1 / self.bucket.rate)  # the old way
                tries.attempt += 1
                return
            self.bucket.fill()
            if tries.attempt < tries.retries:
                if tries.attempt >= 2:  # still refused after pacing: someone hammers it
                    self.sleep(self._backoff(tries.attempt - 2))
                tries.attempt += 1
                return
        if code == "OPERATION_TIME_LIMIT":
            _count("limit", self.member_id)
            wait, shared = self._block_method(method, body)
            if wait <= self.max_operating_wait and tries.attempt < tries.retries:
                if not shared:  # else the wait at the top of the loop honours the block
                    self.sleep(wait)
                tries.attempt += 1
                return
            _count("calls", self.member_id, "error")
            raise RateLimited(code, error.description, status, method=method, retry_after=wait)
        if status >= 500 and code != "OVERLOAD_LIMIT" and self._back_off(tries):
            return
        _count("calls", self.member_id, "error")
        raise error

    def _send(
        self, auth: PortalAuth, method: str, params: Mapping[str, Any]
    ) -> tuple[int, Any, str | None]:
        """POST once; returns (status, parsed JSON or None, Location). Status 0 = no answer
        (then ``body`` is the exception's class name)."""
        try:
            endpoint = check_endpoint(
                auth.client_endpoint, allow_insecure=self.settings.allow_insecure_endpoints
            )
        except InsecureEndpoint as exc:
            raise PortalUnavailable("INSECURE_ENDPOINT", str(exc), None, method=method) from None
        url = endpoint + method
        payload = json.dumps({**params, "auth": auth.access_token}, default=str, ensure_ascii=False)
        started = time.monotonic()
        try:
            response = self.session.post(
                url,
                data=payload.encode("utf-8"),
                headers={
                    "Accept": "application/json",
                    "Content-Type": "application/json; charset=utf-8",
                    "User-Agent": USER_AGENT,
                },
                timeout=self.settings.rest_timeout,
                allow_redirects=False,  # a followed POST may turn into a GET and lose its body
            )
        except requests.RequestException as exc:
            self._log(method, params, 0, "", type(exc).__name__, started)
            return 0, type(exc).__name__, None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        error = None
        if is_error_envelope(body):
            error = str(body.get("error") or "") or "(empty)"
        elif response.status_code >= 400:
            error = f"HTTP_{response.status_code}"
        self._log(method, params, response.status_code, response.text, error, started)
        return response.status_code, body, response.headers.get("Location")

    def _follow_redirect(self, auth: PortalAuth, method: str, location: str) -> PortalAuth:
        """The portal moved (its old address answers 302): re-POST there and remember it.

        A redirect is followed only on the portal's own host, or to another host that the
        trusted OAuth server confirms is now this portal's (``app.info``: same ``member_id``,
        its ``domain``/``client_endpoint`` on the new host) — Bitrix24's documented domain
        change. Anything else is refused (logged, :class:`PortalUnavailable`): a token is
        never sent to, nor an endpoint stored for, a host Bitrix24 did not vouch for.
        """
        target = urljoin(auth.client_endpoint + method, location)
        path = target.split("?", 1)[0]
        for suffix in (method + ".json", method):
            if path.endswith("/" + suffix):
                path = path[: -len(suffix)]
                break
        else:
            path = path.rsplit("/", 1)[0] + "/"
        new_endpoint = check_endpoint(path, allow_insecure=self.settings.allow_insecure_endpoints)
        old_host = urlsplit(auth.client_endpoint).hostname or ""
        new_host = urlsplit(new_endpoint).hostname or ""
        if new_host != old_host and not self._move_confirmed(auth, new_host):
            log.warning(
                "portal %s: refused a redirect from %s to %s (not confirmed by Bitrix24)",
                self.member_id,
                old_host,
                new_host,
            )
            raise PortalUnavailable(
                "REDIRECT_REFUSED", f"redirect to {new_host} refused", None, method=method
            )
        log.warning("portal %s moved: REST endpoint is now %s", self.member_id, new_endpoint)
        self._store_endpoint(auth, new_endpoint)
        return replace(auth, client_endpoint=new_endpoint)

    def _move_confirmed(self, auth: PortalAuth, new_host: str) -> bool:
        """Does the trusted OAuth server say this portal now lives on ``new_host``?"""
        settings = self.settings
        if not is_trusted_oauth_server(
            auth.server_endpoint,
            settings.trusted_oauth_servers,
            allow_insecure=settings.allow_insecure_endpoints,
        ):
            return False
        for attempt in range(2):
            try:
                info = oauth_app_info(
                    auth.server_endpoint,
                    auth.access_token,
                    self.session,
                    float(settings.rest_timeout),
                    allow_insecure=settings.allow_insecure_endpoints,
                )
            except BitrixError as exc:
                if attempt == 0 and exc.code in REFRESHABLE_CODES:
                    auth = self._refresh(auth)
                    continue
                return False
            install = info.get("install") or {}
            if str(install.get("member_id") or "") != self.member_id:
                return False
            hosts = {
                urlsplit(str(install.get("client_endpoint") or "")).hostname,
                str(install.get("domain") or "").split(":", 1)[0] or None,
            }
            return new_host in hosts
        return False

    def _store_endpoint(self, auth: PortalAuth, endpoint: str) -> None:
        update = getattr(self.tokens, "update_client_endpoint", None)
        if callable(update):
            update(self.member_id, endpoint)
            return
        # Fallback: the compare-and-set save with the same pair carries the new endpoint.
        expires_in = 3600
        if auth.expires_at is not None:
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            expires_in = max(0, int((auth.expires_at - now).total_seconds()))
        self.tokens.save_refreshed(
            self.member_id,
            auth.version,
            auth.access_token,
            auth.refresh_token,
            expires_in,
            client_endpoint=endpoint,
        )

    # -- token refresh ----------------------------------------------------------------------

    def _refresh(self, failed: PortalAuth) -> PortalAuth:
        """Get a working token after ``failed`` was refused, refreshing at most once per
        portal at a time.

        Under the per-portal lock, re-read the store: if the version moved, another worker
        already refreshed and its pair is used as is. Otherwise refresh at the OAuth server
        and compare-and-set the new pair.
        """
        timeout = float(self.settings.rest_timeout)
        lock = self.redis.lock(
            f"b24app:lock:refresh:{self.member_id}",
            timeout=timeout * 2 + 10,
            blocking_timeout=timeout + 15,
        )
        if not lock.acquire():
            current = self._load(fresh=True)
            if current.version != failed.version:
                return current
            raise TokenExpired("REFRESH_LOCK_TIMEOUT", "another worker is still refreshing", None)
        try:
            current = self._load(fresh=True)
            if current.version != failed.version:
                return current
            started = time.monotonic()
            try:
                pair = refresh_tokens(
                    current.server_endpoint,
                    self.settings.client_id,
                    self.settings.client_secret,
                    current.refresh_token,
                    self.session,
                    timeout,
                    allow_insecure=self.settings.allow_insecure_endpoints,
                )
            except AuthRevoked as exc:
                self._auth = None
                self._log("oauth.token", {"grant_type": "refresh_token"}, exc.status or 0,
                          "", exc.code, started)  # fmt: skip
                self.tokens.mark_reauth_required(self.member_id)
                raise
            except BitrixError as exc:
                self._log("oauth.token", {"grant_type": "refresh_token"}, exc.status or 0,
                          "", exc.code or "(empty)", started)  # fmt: skip
                raise
            self._log("oauth.token", {"grant_type": "refresh_token"}, 200,
                      '{"access_token": "***", "refresh_token": "***"}', None, started)  # fmt: skip
            stored = self.tokens.save_refreshed(
                self.member_id,
                current.version,
                pair.access_token,
                pair.refresh_token,
                pair.expires_in,
                client_endpoint=pair.client_endpoint or None,
            )
            if not stored:
                log.warning("portal %s: a newer token pair was stored meanwhile", self.member_id)
            return self._load(fresh=True)
        finally:
            try:
                lock.release()
            except LockError:  # expired while we waited on the OAuth server
                pass

    # -- logging ----------------------------------------------------------------------------

    def _log(
        self,
        method: str,
        params: Mapping[str, Any],
        status: int,
        response_text: str,
        error: str | None,
        started: float,
    ) -> None:
        if self.log_sink is None:
            return
        safe = {k: v for k, v in params.items() if k != "auth"}
        request = json.dumps(safe, default=str, ensure_ascii=False)
        row = {
            "member_id": self.member_id,
            "method": method[:128],
            "request": _masked(request),
            "status_code": int(status),
            "response": _masked(response_text or ""),
            "error": error[:128] if error else None,
            "duration_ms": int((time.monotonic() - started) * 1000),
        }
        try:
            self.log_sink(row)
        except Exception:  # a log write must never break the call it describes
            log.exception("REST log sink failed")
