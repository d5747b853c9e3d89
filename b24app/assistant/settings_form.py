"""The assistant's part of the settings page: flat form fields ↔ ``settings["assistant"]``.

Services are one per line: ``code; Название; Name; синоним, synonym; минуты; цена``. The
section is read only when the page posted it (``asst_services`` present), so an older form
without it changes nothing here.
"""

from __future__ import annotations

from typing import Any


def _checked(form: dict[str, Any], name: str) -> bool:
    return str(form.get(name, "")).lower() in {"on", "1", "true", "y", "yes"}


def _int_or_none(value: Any) -> Any:
    text = str(value or "").strip()
    return text if text else None


def services_from_text(text: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in str(text or "").splitlines():
        parts = [p.strip() for p in line.split(";")]
        if not parts or not parts[0]:
            continue
        parts += [""] * (6 - len(parts))
        code, ru, en, synonyms, minutes, price = parts[:6]
        item: dict[str, Any] = {
            "code": code,
            "name": {"ru": ru or code, "en": en or ru or code},
            "synonyms": [s.strip() for s in synonyms.split(",") if s.strip()],
        }
        if minutes:
            item["duration"] = minutes
        item["price"] = price.replace(",", ".") if price else None
        out.append(item)
    return out


def services_to_text(services: list[dict[str, Any]]) -> str:
    lines = []
    for s in services:
        price = s.get("price")
        lines.append("; ".join([
            s["code"], s["name"].get("ru", ""), s["name"].get("en", ""),
            ", ".join(s.get("synonyms") or []), str(s.get("duration") or ""),
            "" if price is None else f"{float(price):g}",
        ]))  # fmt: skip
    return "\n".join(lines)


def safety_from_text(text: Any) -> dict[str, list[str]]:
    """«medical: ботокс, филлеры» a line → {"medical": ["ботокс", "филлеры"]} (the schema
    bounds the topics, the count and the length)."""
    out: dict[str, list[str]] = {}
    for line in str(text or "").splitlines():
        topic, _, words = line.partition(":")
        items = [w.strip() for w in words.split(",") if w.strip()]
        if topic.strip() and items:
            out.setdefault(topic.strip().lower(), []).extend(items)
    return out


def form_to_changes(form: dict[str, Any]) -> dict[str, Any] | None:
    if "asst_services" not in form:
        return None
    lines = [p.strip() for p in str(form.get("asst_lines", "")).split(",") if p.strip()]
    # the holds' limits (b24app.assistant.holds, .rate, .slots): an empty field keeps the value
    limits = {
        key: value
        for key, value in (
            ("hold_minutes", _int_or_none(form.get("asst_hold_minutes"))),
            ("dialogs_per_hour", _int_or_none(form.get("asst_dialogs_per_hour"))),
            ("horizon_days", _int_or_none(form.get("asst_horizon_days"))),
        )
        if value is not None
    }
    return {
        **limits,
        "enabled": _checked(form, "asst_enabled"),
        "model": _checked(form, "asst_model"),
        "lines": lines,
        "greeting": str(form.get("asst_greeting", "")).strip(),
        "questions": {
            "service": str(form.get("asst_q_service", "")).strip(),
            "when": str(form.get("asst_q_when", "")).strip(),
            "contact": str(form.get("asst_q_contact", "")).strip(),
        },
        "services": services_from_text(form.get("asst_services")),
        "kind": str(form.get("asst_kind", "salon")).strip() or "salon",
        "safety_words": safety_from_text(form.get("asst_safety")),
        "handoff": str(form.get("asst_handoff", "operator")).strip() or "operator",
        "queue_id": _int_or_none(form.get("asst_queue_id")),
        "booking_resource_id": _int_or_none(form.get("asst_resource_id")),
    }


def settings_to_form(settings: dict[str, Any]) -> dict[str, Any]:
    a = settings.get("assistant") or {}
    questions = a.get("questions") or {}
    return {
        "asst_enabled": a.get("enabled"),
        "asst_model": a.get("model"),
        "asst_lines": ", ".join(str(x) for x in a.get("lines") or []),
        "asst_greeting": a.get("greeting") or "",
        "asst_q_service": questions.get("service") or "",
        "asst_q_when": questions.get("when") or "",
        "asst_q_contact": questions.get("contact") or "",
        "asst_services": services_to_text(a.get("services") or []),
        "asst_kind": a.get("kind") or "salon",
        "asst_safety": "\n".join(
            f"{topic}: {', '.join(words)}" for topic, words in (a.get("safety_words") or {}).items()
        ),
        "asst_handoff": a.get("handoff") or "operator",
        "asst_queue_id": a.get("queue_id") or "",
        "asst_resource_id": a.get("booking_resource_id") or "",
        "asst_hold_minutes": a.get("hold_minutes") or "",
        "asst_dialogs_per_hour": a.get("dialogs_per_hour") or "",
        "asst_horizon_days": a.get("horizon_days") or "",
    }
