"""The app's own store: portals (tenants), the lead lifecycle, timers, robot calls, KPI inputs.

All datetimes are stored as naive UTC (``utc_now()``), so SQLite and PostgreSQL agree; the
portal's time zone is applied only when a person sees a time or working hours are computed.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy import Boolean
from sqlalchemy import Date
from sqlalchemy import DateTime
from sqlalchemy import Float
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import Integer
from sqlalchemy import JSON
from sqlalchemy import MetaData
from sqlalchemy import Numeric
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from b24app.storage.crypto import EncryptedString

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> dt.datetime:
    """Naive UTC now: the one time representation stored in the database."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class PortalStatus:
    ACTIVE = "active"
    UNINSTALLED = "uninstalled"
    # The refresh token was rejected (invalid_grant): jobs stop until an admin opens the app.
    REAUTH_REQUIRED = "reauth_required"


class Portal(Base):
    """One Bitrix24 portal that installed the app; ``member_id`` is the tenant key."""

    __tablename__ = "portals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), unique=True)
    domain: Mapped[str] = mapped_column(String(255))
    client_endpoint: Mapped[str] = mapped_column(String(512))
    server_endpoint: Mapped[str] = mapped_column(String(512))
    scopes: Mapped[str] = mapped_column(String(1024), default="")
    status: Mapped[str] = mapped_column(String(32), default=PortalStatus.ACTIVE)
    plan: Mapped[str] = mapped_column(String(8), default="")  # F/D/T/P/L/S as Bitrix24 sends it
    lang: Mapped[str] = mapped_column(String(8), default="ru")
    app_version: Mapped[str] = mapped_column(String(32), default="")
    application_token: Mapped[str | None] = mapped_column(EncryptedString(512), nullable=True)
    access_token: Mapped[str | None] = mapped_column(EncryptedString(1024), nullable=True)
    refresh_token: Mapped[str | None] = mapped_column(EncryptedString(1024), nullable=True)
    token_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # Bumped on every stored token pair: a refresh only writes if nobody else did meanwhile.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    installer_user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    installed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    install_finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    registered_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    uninstalled_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # What install registered: {"lead_field": "UF_CRM_B24APP_AI", "statuses": {"new": "NEW", ...}}
    registration: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # crm.settings.mode.get: "classic" (leads + deals) or "simple" (no leads: every new lead is
    # converted into a deal at once); re-read when it may have changed (see b24app.leads.pipelines).
    crm_mode: Mapped[str] = mapped_column(String(8), default="classic")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now, onupdate=utc_now)


class PortalSettings(Base):
    """Admin-editable settings of a portal, one validated JSON document (see ``b24app.settings``)."""

    __tablename__ = "portal_settings"

    portal_id: Mapped[int] = mapped_column(
        ForeignKey("portals.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now, onupdate=utc_now)
    updated_by: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RestLog(Base):
    """Every REST request and response (tokens masked), kept ``rest_log_days`` days."""

    __tablename__ = "rest_log"
    __table_args__ = (Index("ix_rest_log_created", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    member_id: Mapped[str] = mapped_column(String(64), index=True)
    method: Mapped[str] = mapped_column(String(128))
    request: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(128), nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)


class Stage:
    """Our lifecycle stages; each portal maps its own STATUS_IDs onto them at install."""

    NEW = "new"
    QUALIFIED = "qualified"
    CONFIRMED = "confirmed"
    CAME = "came"
    NO_SHOW = "no_show"
    JUNK = "junk"
    OTHER = "other"
    # A lead's move to its success status when it was converted into a deal: the journey
    # goes on on the deal; neither a reply nor a visit.
    CONVERTED = "converted"
    ORDER = (NEW, QUALIFIED, CONFIRMED, CAME, NO_SHOW)


class EntityType:
    """Where a client journey started (``Journey.entity_type``)."""

    LEAD = "lead"
    DEAL = "deal"


class Journey(Base):
    """The lifecycle record of one client journey: what the SLA engine and the KPIs read.

    A journey starts on a lead (``lead_id``) or on a deal created directly (``deal_id`` only);
    a lead converted into a deal keeps its row, which then also carries the ``deal_id``.
    NULLs are distinct in a unique constraint on SQLite and PostgreSQL alike, so both keys are
    unique where set (see :mod:`b24app.leads.journeys`).
    """

    __tablename__ = "journeys"
    __table_args__ = (
        UniqueConstraint("portal_id", "lead_id", name="uq_journeys_portal_lead"),
        UniqueConstraint("portal_id", "deal_id", name="uq_journeys_portal_deal"),
        Index("ix_journeys_portal_created", "portal_id", "created_at"),
        # The KPI roll-up's "changed since the last build" (b24app.kpi.rollup.changed_days).
        Index("ix_journeys_portal_updated", "portal_id", "updated_at"),
        # KPI dashboard (b24app.kpi.metrics): a covering index, so the period's aggregation
        # is an index-only range scan (no table look-up per lead).
        Index(
            "ix_journeys_kpi",
            "portal_id",
            "created_at",
            "deleted_at",
            "assigned_by_id",
            "source_id",
            "channel",
            "is_ai",
            "utm_campaign",
            "first_reply_at",
            "booking_at",
            "confirmed_at",
            "came_at",
            "no_show_at",
            "opportunity",
        ),  # fmt: skip
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    # The CRM lead the journey started on (None for a deal created directly).
    lead_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The deal the journey lives on now (a converted lead, or a deal created directly).
    deal_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    contact_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    entity_type: Mapped[str] = mapped_column(String(8), default=EntityType.LEAD)
    # The deal's pipeline (CATEGORY_ID) and STAGE_ID; ``status_id`` stays the lead's status.
    category_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    deal_stage_id: Mapped[str] = mapped_column(String(64), default="")
    status_id: Mapped[str] = mapped_column(String(64), default="")
    stage: Mapped[str] = mapped_column(String(16), default=Stage.NEW)
    assigned_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source_id: Mapped[str] = mapped_column(String(64), default="")
    utm_source: Mapped[str] = mapped_column(String(255), default="")
    utm_medium: Mapped[str] = mapped_column(String(255), default="")
    utm_campaign: Mapped[str] = mapped_column(String(255), default="")
    utm_content: Mapped[str] = mapped_column(String(255), default="")
    utm_term: Mapped[str] = mapped_column(String(255), default="")
    # chat / call / webform / email / other: decides which SLA policy applies.
    channel: Mapped[str] = mapped_column(String(16), default="other")
    is_ai: Mapped[bool] = mapped_column(Boolean, default=False)
    ai_channel: Mapped[str] = mapped_column(String(64), default="")
    ai_tagged_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    opportunity: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    currency_id: Mapped[str] = mapped_column(String(8), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    first_reply_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    first_reply_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    qualified_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    came_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    no_show_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    booking_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # Bitrix24's DATE_MODIFY of the last state we recorded: an older fetch never overwrites.
    modified_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now, onupdate=utc_now)


class JourneyStageChange(Base):
    """One status move of a journey's lead (from events, backfill or robots); unique per time
    and status. ``journey_key``: see :func:`b24app.leads.journeys.journey_key`."""

    __tablename__ = "journey_stage_changes"
    __table_args__ = (
        UniqueConstraint(
            "portal_id",
            "journey_key",
            "status_id",
            "changed_at",
            name="uq_journey_stage_changes_move",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    journey_key: Mapped[int] = mapped_column(Integer)
    status_id: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime)
    origin: Mapped[str] = mapped_column(String(16), default="event")


class TimerState:
    PENDING = "pending"
    FIRED = "fired"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # due, but the lead had been handled


class Timer(Base):
    """A durable timer: an SLA level or an appointment reminder. The DB is the source of truth;
    the RQ scheduled job with ``job_id`` is only its wake-up call and can be re-created."""

    __tablename__ = "timers"
    __table_args__ = (
        UniqueConstraint("portal_id", "journey_key", "policy", "level", name="uq_timers_key"),
        Index("ix_timers_state_due", "state", "due_at"),
        # KPI breaches/escalations per period (b24app.kpi.metrics.timer_counts), index-only.
        Index("ix_timers_kpi", "portal_id", "due_at", "state", "level", "journey_key"),
        # The KPI roll-up's "fired since the last build" (b24app.kpi.rollup.changed_days).
        Index("ix_timers_fired", "portal_id", "fired_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    # The journey it belongs to (b24app.leads.journeys.journey_key); 0 for an appointment's
    # reminder whose journey is not known yet.
    journey_key: Mapped[int] = mapped_column(Integer)
    # first_reply / confirmation / callback / custom / reminder
    policy: Mapped[str] = mapped_column(String(32))
    # remind / escalate for SLA; 24h / 2h / <n>m for reminders
    level: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[dt.datetime] = mapped_column(DateTime)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)
    state: Mapped[str] = mapped_column(String(16), default=TimerState.PENDING)
    job_id: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fired_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    recipient_user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Set before the notification is sent: "claimed" makes sending at-most-once per timer.
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class RobotCall(Base):
    """A robot invocation, keyed by its event token so a repeated call is answered once."""

    __tablename__ = "robot_calls"
    __table_args__ = (UniqueConstraint("portal_id", "token_hash", name="uq_robot_calls_token"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(64))
    journey_key: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")  # queued/sent/failed/expired
    return_values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    log_message: Mapped[str] = mapped_column(Text, default="")
    # The call itself (event token, document, properties) as encrypted JSON, so a call whose
    # queued job was lost (a Redis crash) can be queued again instead of hanging the workflow.
    request: Mapped[str | None] = mapped_column(EncryptedString(16384), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class CampaignCost(Base):
    """Marketing spend entered by the owner, per UTM campaign and month (``YYYY-MM``)."""

    __tablename__ = "campaign_costs"
    __table_args__ = (
        UniqueConstraint("portal_id", "utm_campaign", "month", name="uq_campaign_costs_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    utm_campaign: Mapped[str] = mapped_column(String(255))
    month: Mapped[str] = mapped_column(String(7))
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 2))


class BackfillState(Base):
    """Progress of the import of existing leads, so an interrupted backfill resumes."""

    __tablename__ = "backfill_state"

    portal_id: Mapped[int] = mapped_column(
        ForeignKey("portals.id", ondelete="CASCADE"), primary_key=True
    )
    last_lead_id: Mapped[int] = mapped_column(Integer, default=0)
    last_history_id: Mapped[int] = mapped_column(Integer, default=0)
    # Deals (b24app.leads.backfill): the last deal id and deal-history id imported.
    last_deal_id: Mapped[int] = mapped_column(Integer, default=0)
    last_deal_history_id: Mapped[int] = mapped_column(Integer, default=0)
    phase: Mapped[str] = mapped_column(String(16), default="leads")  # leads/history/done
    imported: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class ReportRun(Base):
    """A scheduled report sent for a period; the unique key keeps it from going out twice."""

    __tablename__ = "report_runs"
    __table_args__ = (
        UniqueConstraint("portal_id", "kind", "period", "recipient_user_id", name="uq_report_runs"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # daily / weekly / marketing
    period: Mapped[str] = mapped_column(String(32))
    recipient_user_id: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)


class AppointmentStatus:
    SCHEDULED = "scheduled"
    CONFIRMED = "confirmed"
    RESCHEDULE_ASKED = "reschedule"  # the client asked to move or cancel: the manager acts
    CANCELLED = "cancelled"


class VisitOutcome:
    """What happened at an appointment's time (``Appointment.outcome``): b24app/appointments/
    outcomes.py records it once, from a button, a task or a stage moved by hand."""

    CAME = "came"
    NO_SHOW = "no_show"
    MOVED = "moved"
    ALL = (CAME, NO_SHOW, MOVED)


class Appointment(Base):
    """A client's appointment (from Online Booking, a date field or the reminders robot),
    linked to its journey; one per (journey, time): two routes to one visit make one row."""

    __tablename__ = "appointments"
    __table_args__ = (
        UniqueConstraint("portal_id", "booking_id", name="uq_appointments_booking"),
        Index("ix_appointments_journey", "portal_id", "journey_id", "starts_at"),
        Index("ix_appointments_kpi", "portal_id", "starts_at", "status"),
        Index("ix_appointments_chat", "portal_id", "chat_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    journey_id: Mapped[int | None] = mapped_column(
        ForeignKey("journeys.id", ondelete="SET NULL"), nullable=True
    )
    # The Bitrix24 ids it was learned from (a booking links to a deal and/or a contact only).
    booking_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lead_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    deal_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    contact_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source: Mapped[str] = mapped_column(String(16), default="booking")  # booking/field/robot
    service: Mapped[str] = mapped_column(String(255), default="")
    # The client's name (contact NAME + LAST_NAME, or the lead's), read with the appointment's
    # own REST calls when it is created or moved, for the reminder's {client_name}. None: never
    # read (older rows, the robot before it was read); "" = no person name found.
    client_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime)
    # The booking's own time zone (``datePeriod.timezone``); None: the portal's. Quiet hours
    # and the reminder's {time} are in it.
    time_zone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=AppointmentStatus.SCHEDULED)
    # Reminder offsets of this appointment (the robot's); None = the portal's setting.
    offsets: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # What Bitrix24 Booking itself sends the client for this booking ("confirmation",
    # "reminder"), from its resource types' settings when the booking was read; None: not a
    # booking, or not known (the app then sends all its reminders).
    booking_sends: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # A booking's resources and end, kept for what a cancel or a move frees (a deleted booking
    # can no longer be read; b24app/appointments/refill.py). None: not from Online Booking.
    resource_ids: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    ends_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # The open-line chat the last reminder went to (replies there are read as answers).
    chat_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reminded_via: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # The last move to another time (the client in the chat, or the booking moved in
    # Bitrix24): when, and the time it had before (the KPI "rescheduled"). None: never moved.
    moved_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    moved_from: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # Came / no-show / moved (:class:`VisitOutcome`), the first answer wins; ``outcome_source`` is
    # button, task or stage, ``outcome_by`` the user who answered (0: the CRM's stage).
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    outcome_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    outcome_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    outcome_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now, onupdate=utc_now)


class ConsentKind:
    """What a :class:`ConsentRecord` says (b24app/consent/records.py)."""

    ADVERTISING = "advertising"  # the client agreed to advertising (38-ФЗ art. 18)
    OPT_OUT = "opt_out"  # «СТОП»: no non-essential message any more, on any channel


class ConsentRecord(Base):
    """One consent or opt-out of a client, as given: append-only, the latest of a kind wins.

    The client is named by every identifier known when it was recorded (CRM contact, open-line
    chat and its connector user, normalised phone); a look-up matches any of them
    (b24app/consent/contact.py). ``text`` is what the client was shown (a consent) or wrote
    (an opt-out), bounded."""

    __tablename__ = "consent_records"
    # The identifier first: a look-up ORs them (b24app/consent/contact.py), which SQLite and
    # PostgreSQL answer with one index search per identifier only when each leads an index.
    __table_args__ = (
        Index("ix_consent_records_contact", "contact_id", "portal_id"),
        Index("ix_consent_records_chat", "chat_id", "portal_id"),
        Index("ix_consent_records_chat_user", "chat_user_id", "portal_id"),
        Index("ix_consent_records_phone", "phone", "portal_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # ConsentKind
    contact_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chat_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chat_user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)  # E.164
    # Where: "chat" (the client wrote), "tab" (an employee recorded it), "admin" (erase).
    source: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(64), default="")  # connector: telegrambot, …
    text: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[int | None] = mapped_column(Integer, nullable=True)  # employee id
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)
    # An opt-out's one confirmation to the client was sent (never a second one).
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class ReminderAttempt(Base):
    """One try to deliver one reminder by one channel (chat / workflow / todo), kept for the
    detail tab and the delivery-rate KPI."""

    __tablename__ = "reminder_attempts"
    __table_args__ = (Index("ix_reminder_attempts_appt", "appointment_id", "attempted_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"))
    level: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str] = mapped_column(String(255), default="")
    detail: Mapped[str] = mapped_column(String(64), default="")  # chat id, workflow id, …
    attempted_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)
    # What became of it (b24app.appointments.delivery): accepted (sent, no mark yet),
    # delivered, read (the client wrote after it), failed (``error`` says why), unknown
    # (accepted, and nothing said by the deadline); "" for rows of earlier versions.
    state: Mapped[str] = mapped_column(String(16), default="")
    message_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the chat message


class ClientChat(Base):
    """An open-line chat the app has seen: its connector and when its client last wrote (from
    verified message events and history reads), for the messengers' rules
    (:mod:`b24app.reach.channels`)."""

    __tablename__ = "client_chats"
    __table_args__ = (
        UniqueConstraint("portal_id", "chat_id", name="uq_client_chats_chat"),
        Index("ix_client_chats_target", "portal_id", "target"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(Integer)
    connector: Mapped[str] = mapped_column(String(32), default="")
    # The CRM item the app found it on ("deal:77"): a later send names the same one.
    target: Mapped[str] = mapped_column(String(32), default="")
    last_inbound_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # A connector's refusal since the client last wrote (e.g. "vk_901"); "" none.
    refused: Mapped[str] = mapped_column(String(32), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now, onupdate=utc_now)


class SlotRefill(Base):
    """A freed time given to a client from Booking's waitlist or a recent no-show (issue 23
    item 3): counted by the KPI "slots refilled"; their revenue through ``booking_id`` → the
    appointment → the journey."""

    __tablename__ = "slot_refills"
    __table_args__ = (Index("ix_slot_refills_portal", "portal_id", "starts_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    booking_id: Mapped[int] = mapped_column(Integer)  # the booking made for the client
    # the waitlist entry served; None: offered to a recent no-show (b24app/appointments/refill.py)
    waitlist_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    contact_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # the appointment that freed the time (cancelled or moved)
    freed_appointment_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointments.id", ondelete="SET NULL"), nullable=True
    )
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime)
    service: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)


class DirectoryEntry(Base):
    """A name the portal gives a code: a lead source or status (``crm.status.list``), an
    employee (``user.get``). Refreshed by a job (``b24app.directory``); pages only read it."""

    __tablename__ = "portal_directory"
    __table_args__ = (
        UniqueConstraint("portal_id", "kind", "code", name="uq_portal_directory_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # source / status / deal_stage / user
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255), default="")
    sort: Mapped[int] = mapped_column(Integer, default=0)
    # A user the portal no longer returns (dismissed or deleted): the name stays.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    refreshed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)


class KpiDaily(Base):
    """The daily KPI roll-up (``b24app.kpi.rollup``): counters of one portal's leads created
    on one local day, per dimension and key; derived from the lifecycle rows only."""

    __tablename__ = "kpi_daily"
    __table_args__ = (
        UniqueConstraint("portal_id", "grain", "dim", "day", "key", name="uq_kpi_daily_key"),
        # Covering for the trend (one row per day of dimension "ai").
        Index(
            "ix_kpi_daily_trend",
            "portal_id",
            "grain",
            "dim",
            "day",
            "leads",
            "bookings",
            "confirmed",
            "no_shows",
        ),  # fmt: skip
        # A period's sums (b24app.kpi.rollup.compute_dashboard): day ranges of one grain.
        Index("ix_kpi_daily_period", "portal_id", "grain", "day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    # "d": one local day; "m": the sum of a month's day rows (``day`` = the 1st).
    grain: Mapped[str] = mapped_column(String(1), default="d")
    day: Mapped[dt.date] = mapped_column(Date)
    dim: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(255))
    leads: Mapped[int] = mapped_column(Integer, default=0)
    bookings: Mapped[int] = mapped_column(Integer, default=0)
    confirmed: Mapped[int] = mapped_column(Integer, default=0)
    no_shows: Mapped[int] = mapped_column(Integer, default=0)
    came: Mapped[int] = mapped_column(Integer, default=0)
    paid_visits: Mapped[int] = mapped_column(Integer, default=0)
    revenue: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=0)
    replied: Mapped[int] = mapped_column(Integer, default=0)
    replied_in_sla: Mapped[int] = mapped_column(Integer, default=0)
    sla_due: Mapped[int] = mapped_column(Integer, default=0)
    breaches: Mapped[int] = mapped_column(Integer, default=0)
    escalations: Mapped[int] = mapped_column(Integer, default=0)


class KpiDailyReply(Base):
    """The daily roll-up's first-reply times: how many of a manager's leads created that day
    were answered in ``bucket`` seconds (``b24app.kpi.rollup.reply_bucket``)."""

    __tablename__ = "kpi_daily_reply"
    __table_args__ = (
        UniqueConstraint(
            "portal_id", "grain", "day", "manager", "bucket", name="uq_kpi_daily_reply_key"
        ),
        # Covering: a period's histogram is an index-only scan of its day ranges.
        Index("ix_kpi_daily_reply_period", "portal_id", "grain", "day", "manager", "bucket", "n"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    grain: Mapped[str] = mapped_column(String(1), default="d")
    day: Mapped[dt.date] = mapped_column(Date)
    manager: Mapped[str] = mapped_column(String(16))
    bucket: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)


class KpiDailyState(Base):
    """What a portal's roll-up was built with, and when (changes after it are read live)."""

    __tablename__ = "kpi_daily_state"

    portal_id: Mapped[int] = mapped_column(
        ForeignKey("portals.id", ondelete="CASCADE"), primary_key=True
    )
    tz: Mapped[str] = mapped_column(String(64))
    sla_s: Mapped[float] = mapped_column(Float)
    built_at: Mapped[dt.datetime] = mapped_column(DateTime)


class AssistantDialog(Base):
    """The AI assistant's dialog in one open-line chat: its state machine and what it learned."""

    __tablename__ = "assistant_dialogs"
    __table_args__ = (
        UniqueConstraint("portal_id", "chat_id", name="uq_assistant_dialogs_chat"),
        Index("ix_assistant_dialogs_portal_created", "portal_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    portal_id: Mapped[int] = mapped_column(ForeignKey("portals.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(64))  # string CHAT_ID, as imopenlines gives
    dialog_id: Mapped[str] = mapped_column(String(64))  # reply target ("chat1777")
    bot_id: Mapped[int] = mapped_column(Integer)
    line_id: Mapped[str] = mapped_column(String(32), default="")
    channel: Mapped[str] = mapped_column(String(64), default="")  # connector: telegrambot, …
    client_user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lead_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    deal_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    contact_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="new")
    slots: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    handoff_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    handoff_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    operator_notified_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    booked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    booking_start: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    booking_end: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    booking_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # Online Booking
    appointment_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    turns: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utc_now, onupdate=utc_now)


class AssistantTurn(Base):
    """One client message and the assistant's answer: what was understood, how sure, timings.

    Unique per (dialog, message id): a repeated event delivery finds its turn and does nothing.
    """

    __tablename__ = "assistant_turns"
    __table_args__ = (
        UniqueConstraint("dialog_id", "message_id", name="uq_assistant_turns_message"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dialog_id: Mapped[int] = mapped_column(ForeignKey("assistant_dialogs.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(BigInteger)
    state_before: Mapped[str] = mapped_column(String(16))
    state_after: Mapped[str] = mapped_column(String(16))
    understood: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    confidence: Mapped[float] = mapped_column(Numeric(4, 2), default=0)
    source: Mapped[str] = mapped_column(String(16), default="rules")
    reply: Mapped[str] = mapped_column(Text, default="")
    actions: Mapped[list[str]] = mapped_column(JSON, default=list)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime)  # event delivered to us
    answered_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    think_ms: Mapped[int] = mapped_column(Integer, default=0)
    total_ms: Mapped[int] = mapped_column(Integer, default=0)
