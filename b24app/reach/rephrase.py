"""Optional rephrasing of the portal's reminder template by an OpenAI-compatible model.

Off by default (the portal's ``appointments.rephrase`` and ``B24APP_LLM_API_KEY`` both needed).
What the model sees is the **template**, placeholders and all — never a client's name, date or
phone — so no personal data leaves, and one answer serves every reminder of that template: it
is kept in Redis per (template, language, model) for a week. A shared worker pays at most one
model call (timeout :data:`TIMEOUT`) per portal template per week.

The answer is used only when it keeps the template's meaning in the ways that can be checked:
exactly the same placeholders, no number, link or e-mail that the template does not have, a
length within bounds, and none of the words of advice (medical, legal) the model must not add;
anything else — or any failure — gives the template itself. The check is deliberately strict:
the template is always a correct message, a rephrasing is only a nicety.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from typing import Any

import requests

from b24app import templating
from b24app.robots.qualifier import ask_json

log = logging.getLogger(__name__)

TIMEOUT = 2.0
CACHE_SECONDS = 7 * 24 * 3600
# Words a reminder must not gain: advice is for people (ru and en stems, lower case).
ADVICE_STEMS = (
    "лечен", "диагноз", "рекоменд", "совет", "врач", "лекарств", "юрид", "закон", "суд",
    "treat", "diagnos", "recommend", "advice", "advis", "doctor", "medic", "legal", "law",
)  # fmt: skip
SYSTEM_PROMPT = (
    "You rewrite an appointment reminder template of a beauty salon or clinic so that it reads "
    "warm and natural, in the same language, with the same meaning. Keep every placeholder in "
    "curly braces exactly as written (for example {client_name}, {date}, {time}) and use each "
    "as many times as the original does. Add no facts, numbers, links, prices, offers or "
    "advice of any kind. At most one emoji. Answer with JSON only: "
    '{"text": "the rewritten template"}.'
)


def _digits(text: str) -> Counter[str]:
    """Runs of digits (numbers) in ``text`` outside placeholders."""
    runs: Counter[str] = Counter()
    current = ""
    for ch in text:
        if ch.isdigit():
            current += ch
        elif current:
            runs[current] += 1
            current = ""
    if current:
        runs[current] += 1
    return runs


def acceptable(template: str, candidate: str) -> bool:
    """Whether ``candidate`` may stand for ``template`` (see the module's rules)."""
    if not candidate.strip() or templating.validate(candidate):
        return False
    if Counter(templating.placeholders(candidate)) != Counter(templating.placeholders(template)):
        return False
    if not len(candidate) <= len(template) * 1.6 + 80 or len(candidate) < len(template) * 0.4:
        return False
    if _digits(candidate) - _digits(template):
        return False  # a new number: a time, a price or a phone the template does not have
    lowered, original = candidate.casefold(), template.casefold()
    for marker in ("http", "www.", "@", *ADVICE_STEMS):
        if marker in lowered and marker not in original:
            return False
    return True


class Rephraser:
    """The model behind :meth:`template_for`; the template itself on any doubt or failure."""

    def __init__(
        self,
        redis: Any,
        api_url: str,
        api_key: str,
        model: str,
        *,
        timeout: float = TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        self.redis = redis
        self.url = (api_url or "https://api.openai.com/v1").rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.model = model
        self.timeout = timeout
        self.session = session or requests.Session()

    def _key(self, template: str, lang: str) -> str:
        digest = hashlib.sha256(f"{self.model}\0{lang}\0{template}".encode()).hexdigest()
        return f"b24app:rephrase:{digest[:32]}"

    def template_for(self, template: str, lang: str) -> tuple[str, str]:
        """``(template to render, source)``: source ``model`` (a checked rephrasing, perhaps
        from the cache), ``template`` (the model's answer was refused) or
        ``template_fallback`` (the model failed)."""
        if not template.strip():
            return template, "template"
        key = self._key(template, lang)
        cached = self.redis.get(key)
        if cached is not None:
            text = cached.decode() if isinstance(cached, bytes) else str(cached)
            return (text, "model") if text else (template, "template")
        try:
            data = ask_json(self.session, self.url, self.api_key, self.model, SYSTEM_PROMPT,
                            f"Language: {lang}\nTemplate:\n{template}", self.timeout)  # fmt: skip
        except Exception as exc:  # a third party must never stop a reminder
            log.warning("rephrasing failed, the template is used: %s", type(exc).__name__)
            return template, "template_fallback"
        candidate = str(data.get("text") or "") if isinstance(data, dict) else ""
        ok = acceptable(template, candidate)
        # A refused answer is remembered too (as ""), so a bad model is not asked again.
        self.redis.set(key, candidate if ok else "", ex=CACHE_SECONDS)
        if not ok:
            log.info("rephrasing refused: it changed what the template says")
            return template, "template"
        return candidate, "model"
