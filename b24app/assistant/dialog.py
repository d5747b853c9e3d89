"""The assistant's dialog: a state machine over one open-line chat. Pure Python, no I/O.

greeting → ``service`` → ``when`` (desired day/time) → ``contact`` (phone) → ``name`` →
``slot`` (free times offered as buttons; choosing one pre-books) → ``confirm`` →
``confirmed``. At any point the client may type free text (every slot it mentions is taken,
whatever was asked), tap a button, say "назад"/"back", or ask for a person. A hand-off ends
the script (``handoff``): on a request for a person, a complaint, a medical or legal topic,
no free time at all, or when twice in a row nothing useful was understood.

:func:`step` takes the stored :class:`DialogState`, the :class:`Understanding` of the
message and a ``free_times`` function, and returns a :class:`Reply` (text, buttons, the new
state and the side effects the job must carry out: ``prebook``, ``confirm``, ``handoff``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

from b24app.assistant.understanding import ANSWERING_SCORES
from b24app.assistant.understanding import HANDOFF_INTENTS
from b24app.assistant.understanding import Service
from b24app.assistant.understanding import Understanding
from b24app.assistant.understanding import When
from b24app.i18n import translate

ORDER = ("service", "when", "contact", "name", "slot", "confirm")
FINAL = ("confirmed", "handoff", "cancelled")
MAX_FAILS = 2
SURE = 0.6
MAX_OFFERED = 6

# free_times(when, duration_minutes) -> local start times, soonest first
FreeTimes = Callable[[When, int], list[dt.datetime]]


@dataclass
class DialogState:
    state: str = "new"
    service: str | None = None
    when: When | None = None
    phone: str | None = None
    name: str | None = None
    offered: list[str] = field(default_factory=list)  # local ISO datetimes, as buttons
    offered_at: str | None = None  # local ISO: when ``offered`` was offered
    start: str | None = None  # the pre-booked local ISO datetime
    fails: int = 0
    handoff_reason: str | None = None

    def slots(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "when": self.when.as_dict() if self.when else None,
            "phone": self.phone,
            "name": self.name,
            "offered": self.offered,
            "offered_at": self.offered_at,
            "start": self.start,
            "fails": self.fails,
        }

    @classmethod
    def load(cls, state: str, slots: dict[str, Any] | None, reason: str | None) -> DialogState:
        slots = slots or {}
        return cls(
            state=state,
            service=slots.get("service"),
            when=When.from_dict(slots.get("when")),
            phone=slots.get("phone"),
            name=slots.get("name"),
            offered=list(slots.get("offered") or []),
            offered_at=slots.get("offered_at"),
            start=slots.get("start"),
            fails=int(slots.get("fails") or 0),
            handoff_reason=reason,
        )


@dataclass(frozen=True)
class Script:
    """The portal's script: services, greeting and the three questions (per language)."""

    services: Sequence[Service]
    lang: str = "ru"
    greeting: str = ""
    questions: dict[str, str] = field(default_factory=dict)
    business_name: str = ""
    # the last day the assistant books (its horizon); a later day wished is refused
    last_day: dt.date | None = None

    def service(self, code: str | None) -> Service | None:
        return next((s for s in self.services if s.code == code), None)

    def text(self, key: str, **params: Any) -> str:
        custom = self.questions.get(key) if key in ("service", "when", "contact") else None
        return custom or translate(self.lang, "assistant." + key, **params)


@dataclass
class Reply:
    text: str
    state: DialogState
    buttons: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)  # prebook, confirm, handoff, cancel

    @property
    def silent(self) -> bool:
        return not self.text


def fmt_slot(moment: dt.datetime, lang: str) -> str:
    """``Сб 28.11 18:00`` / ``Sat 28.11 18:00`` — a button's text."""
    day = translate(lang, f"assistant.wd.{moment.weekday()}")
    return f"{day} {moment:%d.%m %H:%M}"


def fmt_wish(s: DialogState, script: Script) -> str:
    """«Маникюр, вторник 8 декабря, 20:00» / "Manicure, Tuesday 8 December, after 18:00"."""
    service = script.service(s.service)
    parts = [service.title(script.lang) if service else (s.service or ""), fmt_when(s.when, script)]
    return ", ".join(p for p in parts if p)


def fmt_when(when: When | None, script: Script) -> str:
    """«вторник 8 декабря, после 18:00»: a window never reads as an exact time."""
    when = when or When()
    parts = []
    if when.day:
        weekday = translate(script.lang, f"assistant.wdf.{when.day.weekday()}")
        month = translate(script.lang, f"assistant.month.{when.day.month}")
        parts.append(f"{weekday} {when.day.day} {month}")
    hm = "%H:%M"
    if when.at:
        parts.append(when.at.strftime(hm))
    elif when.earliest and when.latest:
        parts.append(script.text("between", start=when.earliest.strftime(hm),
                                 end=when.latest.strftime(hm)))  # fmt: skip
    elif when.earliest:
        parts.append(script.text("after", time=when.earliest.strftime(hm)))
    elif when.latest:
        parts.append(script.text("before", time=when.latest.strftime(hm)))
    return ", ".join(p for p in parts if p)


def _useful(u: Understanding, expect: str) -> bool:
    keys = ANSWERING_SCORES[expect]
    if expect == "confirm":
        keys += ("choice", "when")  # at the confirmation a new time answers too
    return any(u.scores.get(k, 0) >= SURE for k in keys)


def _absorb(state: DialogState, u: Understanding) -> DialogState:
    """Take every slot the message mentions with enough confidence."""
    s = replace(state)
    if u.service and u.scores.get("service", 0) >= SURE and u.service != s.service:
        s.service = u.service
        s.offered, s.start = [], None
    if u.when and u.scores.get("when", 0) >= SURE and not u.choice:
        s.when = s.when.merged(u.when) if s.when else u.when
        s.offered, s.start = [], None
    if u.phone:
        s.phone = u.phone
    if u.name and u.scores.get("name", 0) >= SURE:
        s.name = u.name
    return s


def _next_missing(s: DialogState) -> str:
    if not s.service:
        return "service"
    if not s.when:
        return "when"
    if not s.phone:
        return "contact"
    if not s.name:
        return "name"
    if not s.start:
        return "slot"
    return "confirm"


def _back(s: DialogState) -> DialogState:
    """One step back: forget the answer to the previous question and ask it again."""
    s = replace(s, fails=0, offered=[], start=None)
    current = s.state if s.state in ORDER else _next_missing(s)
    if current in ("confirm", "slot"):
        s.when = None  # "другое время": ask the day/time again
    elif current == "name":
        s.phone = None
    elif current == "contact":
        s.when = None
    elif current == "when":
        s.service = None
    return s


def handoff(s: DialogState, script: Script, reason: str) -> Reply:
    s = replace(s, state="handoff", handoff_reason=reason)
    return Reply(script.text("handoff_" + reason), s, actions=["handoff"])


def _ask(s: DialogState, script: Script, free_times: FreeTimes, prefix: str = "") -> Reply:
    """Ask for the next missing slot (offering free times when that is the slot)."""
    need = _next_missing(s)
    s = replace(s, state=need)
    lead = (prefix + "\n") if prefix else ""
    if need == "service":
        buttons = [svc.title(script.lang) for svc in script.services]
        return Reply(lead + script.text("service"), s, buttons)
    if need == "when":
        return Reply(lead + script.text("when"), s, [script.text("btn_tomorrow_evening")])
    if need == "contact":
        return Reply(lead + script.text("contact"), s)
    if need == "name":
        return Reply(lead + script.text("name"), s)
    if need == "slot":
        service = script.service(s.service)
        assert s.when is not None
        times = free_times(s.when, service.duration if service else 60)[:MAX_OFFERED]
        if not times:
            return handoff(s, script, "no_time")
        s.offered = [t.isoformat(timespec="minutes") for t in times]
        buttons = [fmt_slot(t, script.lang) for t in times]
        exact = (
            s.when.at
            and s.when.day
            and any(t.time() == s.when.at and t.date() == s.when.day for t in times)
        )
        key = "slot_exact" if exact else "slot"
        listing = "\n".join(f"{i}. {b}" for i, b in enumerate(buttons, 1))
        # What was understood, read back before anything is pre-booked: the tap on a time is
        # the client's yes to it.
        readback = script.text("readback", wish=fmt_wish(s, script)) + " "
        return Reply(lead + readback + script.text(key) + "\n" + listing, s, buttons)
    service = script.service(s.service)
    assert s.start is not None
    start = dt.datetime.fromisoformat(s.start)
    text = script.text(
        "confirm",
        service=service.title(script.lang) if service else s.service or "",
        when=fmt_slot(start, script.lang),
        name=s.name or "",
        phone=s.phone or "",
    )
    return Reply(lead + text, s, [script.text("btn_yes"), script.text("btn_change")])


def _too_far(u: Understanding, script: Script) -> bool:
    """The message wishes a day beyond the assistant's horizon."""
    return bool(
        script.last_day
        and u.when is not None
        and u.when.day is not None
        and u.when.day > script.last_day
        and u.scores.get("when", 0) >= SURE
    )


def hold_refused(state: DialogState, script: Script) -> Reply:
    """The client already holds an unconfirmed pre-booking in another chat: nothing is booked,
    the times offered stay on the buttons (``assistant.holds``)."""
    s = replace(state, state="slot", start=None)
    buttons = [fmt_slot(dt.datetime.fromisoformat(o), script.lang) for o in s.offered]
    return Reply(script.text("hold_elsewhere"), s, buttons)


def may_prebook(state: DialogState, u: Understanding) -> bool:
    """The client tapped one of the offered times: this turn may pre-book it (the caller
    decides and claims the time under the portal's slot lock, see ``assistant.claims``)."""
    return state.state == "slot" and bool(u.choice)


def step(
    state: DialogState,
    u: Understanding,
    script: Script,
    free_times: FreeTimes,
) -> Reply:
    """One turn: what the assistant answers to ``u`` and the state it leaves behind."""
    if state.state == "handoff":
        return Reply("", state)  # an operator has the chat now
    for intent in HANDOFF_INTENTS:
        if u.has(intent):  # keep what the message also said: the operator reads it
            return handoff(_absorb(state, u), script, intent)
    if state.state == "confirmed":
        # A reply to an appointment reminder reaching the bot's chat reads as the reminders
        # read it (one classifier, understanding.classify_reply): "1"/"да" confirms,
        # "2"/"перенести"/"не смогу" → a person.
        if u.has("reschedule") or u.has("back") or u.has("cancel"):
            return handoff(state, script, "change_after_confirm")
        if u.has("confirm"):
            return Reply(script.text("see_you"), state, actions=["confirm"])
        return Reply(script.text("already_confirmed"), state)

    if u.ambiguous_hour is not None and not (u.when and u.when.has_time) and not u.choice:
        # «в 8»: morning or evening? A wrong time is worse than a question.
        hour = u.ambiguous_hour
        s = replace(_absorb(state, u), state="when", fails=0)
        return Reply(script.text("ask_ampm", hour=hour), s, [f"{hour:02d}:00", f"{hour + 12}:00"])

    greeting = ""
    if state.state in ("new", "cancelled"):
        greeting = script.greeting or script.text("greeting", business=script.business_name)

    if u.has("back") and state.state not in ("new", "cancelled"):
        return _ask(_back(state), script, free_times, script.text("back_ok"))

    if _too_far(u, script):
        # «31.12.9999»: everything else the message said is kept, the day is asked again
        assert script.last_day is not None
        s = replace(_absorb(state, replace(u, when=None)), fails=0)
        prefix = script.text("too_far", date=f"{script.last_day:%d.%m.%Y}")
        return _ask(s, script, free_times, (greeting + "\n" + prefix).strip())

    expect = state.state if state.state in ORDER else None
    s = _absorb(state, u)

    if may_prebook(state, u):
        tapped = str(u.choice)
        index = [fmt_slot(dt.datetime.fromisoformat(o), script.lang) for o in s.offered].index(
            tapped
        )
        chosen = dt.datetime.fromisoformat(s.offered[index])
        service = script.service(s.service)
        duration = service.duration if service else 60
        if chosen not in free_times(When(day=chosen.date(), at=chosen.time()), duration):
            # Taken since it was offered (another client's pre-booking, the salon's own
            # booking): fresh times for the same wish, nothing booked.
            s = replace(s, offered=[], start=None, fails=0)
            return _ask(s, script, free_times, script.text("slot_taken"))
        s = replace(s, start=s.offered[index], fails=0)
        reply = _ask(s, script, free_times)
        reply.actions.append("prebook")
        return reply
    if expect == "confirm":
        if u.has("confirm") or u.choice == script.text("btn_yes"):
            s = replace(s, state="confirmed", fails=0)
            return Reply(_confirmed_text(s, script), s, actions=["confirm"])
        if u.has("cancel") or u.choice == script.text("btn_change"):
            s = replace(_back(s), state="when")
            return _ask(s, script, free_times, script.text("back_ok"))

    if expect and not _useful(u, expect) and not u.has("greeting"):
        fails = s.fails + 1
        if fails >= MAX_FAILS:
            return handoff(replace(s, fails=fails), script, "low_confidence")
        s = replace(s, fails=fails)
        return _ask(s, script, free_times, script.text("not_understood"))
    s = replace(s, fails=0)
    if expect is None and s.state == "cancelled":
        s = replace(s, state="new")
    return _ask(s, script, free_times, greeting)


def _confirmed_text(s: DialogState, script: Script) -> str:
    service = script.service(s.service)
    assert s.start is not None
    return script.text(
        "confirmed",
        service=service.title(script.lang) if service else s.service or "",
        when=fmt_slot(dt.datetime.fromisoformat(s.start), script.lang),
    )


def summary(s: DialogState, script: Script, client: str = "") -> str:
    """The one paragraph an operator reads at the hand-off."""
    service = script.service(s.service)
    parts = [
        script.text(
            "summary_head", reason=script.text("reason_" + (s.handoff_reason or "operator"))
        ),
    ]
    if client or s.name:
        parts.append(script.text("summary_name", name=s.name or client))
    if service:
        parts.append(script.text("summary_service", service=service.title(script.lang)))
    if s.start:
        parts.append(
            script.text(
                "summary_start", when=fmt_slot(dt.datetime.fromisoformat(s.start), script.lang)
            )
        )
    elif s.when:
        parts.append(script.text("summary_when", when=fmt_when(s.when, script)))
    if s.phone:
        parts.append(script.text("summary_phone", phone=s.phone))
    return " ".join(parts)
