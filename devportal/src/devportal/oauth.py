"""Access/refresh tokens and authorization codes, shared by every portal of one emulator.

Real Bitrix24 issues tokens on its OAuth server; portals then accept them. Here one store
knows every token, which portal (slug) and user it belongs to, and when it expires:

* access tokens live ``access_ttl`` seconds (3600 like Bitrix24), refresh tokens 180 days;
* a refresh **rotates**: the old refresh token and the access token of that pair die at once
  (the docs are silent about the old pair; we take the strict reading so the app is tested
  against the harshest server);
* ``revoke_grant(slug)`` kills every refresh token of a portal (``invalid_grant`` afterwards);
* authorization codes are single-use and live 30 seconds.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

ACCESS_TTL = 3600
REFRESH_TTL = 180 * 24 * 3600
CODE_TTL = 30


def new_token() -> str:
    """A 64-hex token like the ones modern portals hand out."""
    return secrets.token_hex(32)


@dataclass
class TokenPair:
    """One grant instance: an access token, its refresh token and whose they are."""

    access_token: str
    refresh_token: str
    slug: str
    user_id: int
    expires_at: float
    refresh_expires_at: float
    alive: bool = True

    def expires_in(self, now: float) -> int:
        return max(0, int(self.expires_at - now))


@dataclass
class AuthCode:
    code: str
    slug: str
    user_id: int
    expires_at: float
    used: bool = False


class TokenStore:
    """Thread-safe token bookkeeping; lookups are O(1) dict hits."""

    def __init__(
        self, clock: Callable[[], float] = time.time, access_ttl: int = ACCESS_TTL
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.access_ttl = access_ttl
        self._by_access: dict[str, TokenPair] = {}
        self._by_refresh: dict[str, TokenPair] = {}
        self._codes: dict[str, AuthCode] = {}
        self.refresh_count: dict[str, int] = {}

    def issue(self, slug: str, user_id: int) -> TokenPair:
        """A brand-new pair for ``user_id`` on portal ``slug``."""
        now = self._clock()
        pair = TokenPair(
            access_token=new_token(),
            refresh_token=new_token(),
            slug=slug,
            user_id=user_id,
            expires_at=now + self.access_ttl,
            refresh_expires_at=now + REFRESH_TTL,
        )
        with self._lock:
            self._by_access[pair.access_token] = pair
            self._by_refresh[pair.refresh_token] = pair
        return pair

    def by_access(self, token: str) -> TokenPair | None:
        with self._lock:
            pair = self._by_access.get(token)
        return pair if pair is not None and pair.alive else None

    def is_expired(self, pair: TokenPair) -> bool:
        return pair.expires_at <= self._clock()

    def refresh(self, refresh_token: str) -> TokenPair | None:
        """Rotate: the old pair dies, a new one is returned; None = ``invalid_grant``."""
        with self._lock:
            old = self._by_refresh.get(refresh_token)
            if old is None or not old.alive or old.refresh_expires_at <= self._clock():
                return None
            old.alive = False
            del self._by_refresh[refresh_token]
            self._by_access.pop(old.access_token, None)
            self.refresh_count[old.slug] = self.refresh_count.get(old.slug, 0) + 1
        return self.issue(old.slug, old.user_id)

    def issue_code(self, slug: str, user_id: int) -> str:
        code = secrets.token_hex(16)
        with self._lock:
            self._codes[code] = AuthCode(code, slug, user_id, self._clock() + CODE_TTL)
        return code

    def redeem_code(self, code: str) -> TokenPair | None:
        with self._lock:
            auth = self._codes.get(code)
            if auth is None or auth.used or auth.expires_at <= self._clock():
                return None
            auth.used = True
        return self.issue(auth.slug, auth.user_id)

    def expire_access(self, slug: str | None = None) -> int:
        """Make current access tokens (of one portal, or all) expired; refresh still works."""
        past = self._clock() - 1
        count = 0
        with self._lock:
            for pair in self._by_access.values():
                if slug is None or pair.slug == slug:
                    pair.expires_at = past
                    count += 1
        return count

    def revoke_refresh(self, slug: str) -> None:
        """Every refresh token of the portal stops working (``invalid_grant``)."""
        with self._lock:
            for token in [t for t, p in self._by_refresh.items() if p.slug == slug]:
                del self._by_refresh[token]

    def invalidate(self, slug: str) -> None:
        """Uninstall: every token of the portal dies."""
        with self._lock:
            for token in [t for t, p in self._by_access.items() if p.slug == slug]:
                self._by_access.pop(token).alive = False
            for token in [t for t, p in self._by_refresh.items() if p.slug == slug]:
                self._by_refresh.pop(token).alive = False
