"""Marshmallow schemas for the framed pages: the Bitrix24 frame POST, the period picker, the
lead tab's ``PLACEMENT_OPTIONS``, the ROI form and the settings form."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from marshmallow import fields
from marshmallow import post_load
from marshmallow import pre_load
from marshmallow import validate
from marshmallow import ValidationError

from b24app.kpi.metrics import PRESETS
from b24app.schemas import PayloadSchema

# PLACEMENT_OPTIONS is a small JSON object ({"ID": "8061"}); json.loads recurses once per
# level, so 50 000 "[" would raise RecursionError: depth and size are checked first.
MAX_OPTIONS_LENGTH = 16 * 1024
MAX_OPTIONS_DEPTH = 8


def json_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of a JSON text, in one pass (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


class FrameQuerySchema(PayloadSchema):
    """Query string of a frame load (``DOMAIN, PROTOCOL, LANG, APP_SID``) — informational
    only: nothing here is trusted for verification."""

    DOMAIN = fields.String(load_default="", validate=validate.Length(max=255))
    LANG = fields.String(load_default="ru", validate=validate.Length(max=8))
    APP_SID = fields.String(load_default="", validate=validate.Length(max=128))


class FrameFormSchema(PayloadSchema):
    """Body of a placement / app-page POST. Credentials are checked by the trust layer
    (missing ones → 401), so they are optional here."""

    AUTH_ID = fields.String(load_default=None, validate=validate.Length(max=512))
    AUTH_EXPIRES = fields.Integer(load_default=3600, validate=validate.Range(min=1, max=86400))
    APPLICATION_TOKEN = fields.String(load_default=None, validate=validate.Length(max=128))
    member_id = fields.String(load_default=None, validate=validate.Length(max=64))
    PLACEMENT = fields.String(load_default="DEFAULT", validate=validate.Length(max=64))
    PLACEMENT_OPTIONS = fields.Raw(load_default=None)

    @post_load
    def _options(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        raw = data.get("PLACEMENT_OPTIONS")
        if raw in (None, ""):
            data["PLACEMENT_OPTIONS"] = {}
        elif isinstance(raw, dict):  # already nested by the bracket-key parser
            data["PLACEMENT_OPTIONS"] = raw
        elif isinstance(raw, str):
            if len(raw) > MAX_OPTIONS_LENGTH or json_depth(raw) > MAX_OPTIONS_DEPTH:
                raise ValidationError(
                    f"too large (at most {MAX_OPTIONS_LENGTH} characters, "
                    f"{MAX_OPTIONS_DEPTH} levels)",
                    "PLACEMENT_OPTIONS",
                )
            try:
                parsed = json.loads(raw)
            except ValueError as exc:
                raise ValidationError("not a JSON object", "PLACEMENT_OPTIONS") from exc
            if not isinstance(parsed, dict):
                raise ValidationError("not a JSON object", "PLACEMENT_OPTIONS")
            data["PLACEMENT_OPTIONS"] = parsed
        else:
            raise ValidationError("not a JSON object", "PLACEMENT_OPTIONS")
        return data


class LeadTabOptionsSchema(PayloadSchema):
    """``PLACEMENT_OPTIONS`` of ``CRM_LEAD_DETAIL_TAB``: ``{"ID": "8061", "URI": ...}``."""

    ID = fields.Integer(required=True, strict=False, validate=validate.Range(min=1, max=2**31 - 1))


class JourneyRefSchema(PayloadSchema):
    """The journey a tab's follow-up form is about: its key (b24app/leads/journeys.py) and
    the CRM item the tab was opened on (``consent``, ``privacy/*`` in placements/views.py)."""

    key = fields.Integer(
        required=True, strict=False, validate=validate.Range(min=-(2**31), max=2**31 - 1)
    )
    entity = fields.String(required=True, validate=validate.OneOf(("lead", "deal")))
    entity_id = fields.Integer(
        required=True, strict=False, validate=validate.Range(min=1, max=2**31 - 1)
    )
    confirm = fields.String(load_default="")


_YEARS = validate.Range(
    min=dt.date(2000, 1, 1), max=dt.date(2100, 12, 31), error="a date from 2000-01-01 to 2100-12-31"
)


class PeriodSchema(PayloadSchema):
    """The period picker: a preset, or explicit local dates; trend by day or week."""

    period = fields.String(load_default=None, validate=validate.OneOf([*PRESETS, "custom"]))
    # Year 1 / 9999 overflow date arithmetic (a 500): only plausible business dates.
    date_from = fields.Date(load_default=None, data_key="from", validate=_YEARS)
    date_to = fields.Date(load_default=None, data_key="to", validate=_YEARS)
    view = fields.String(load_default=None, validate=validate.OneOf(["day", "week"]))

    @pre_load
    def _blank_is_missing(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v not in ("", None)}
        return data


_MONEY = validate.Range(min=0, max=10**11)


class RoiFormSchema(PayloadSchema):
    """Inputs of the ROI calculator."""

    leads_before = fields.Decimal(required=True, validate=validate.Range(min=0, max=10**7))
    conversion_before = fields.Decimal(required=True, validate=validate.Range(min=0, max=100))
    check_before = fields.Decimal(required=True, validate=_MONEY)
    leads_after = fields.Decimal(required=True, validate=validate.Range(min=0, max=10**7))
    conversion_after = fields.Decimal(required=True, validate=validate.Range(min=0, max=100))
    check_after = fields.Decimal(load_default=None, validate=_MONEY)
    one_off_cost = fields.Decimal(required=True, validate=_MONEY)
    monthly_cost = fields.Decimal(required=True, validate=_MONEY)
    monthly_savings = fields.Decimal(load_default=0, validate=_MONEY)
    margin = fields.Decimal(load_default=100, validate=validate.Range(min=0, max=100))
    months = fields.Integer(load_default=12, validate=validate.Range(min=1, max=120))

    @pre_load
    def _normalise(self, data: Any, **_: Any) -> Any:
        # People type "1 500,50": drop spaces, accept a decimal comma, blank = default.
        if not isinstance(data, dict):
            return data
        clean = {}
        for key, value in data.items():
            if isinstance(value, str):
                value = value.replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
                value = value.replace(",", ".")
                if value == "":
                    continue
            clean[key] = value
        return clean
