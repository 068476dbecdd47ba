"""The 'ga4' source adapter: rows of the Google Analytics 4 BigQuery export -> web and app touchpoints.

``platform`` decides the channel: WEB -> web, ANDROID / IOS -> app (absent: app when ``app_info.id``
is set, else web). Identifiers: ``user_id`` -> customer_id; ``user_pseudo_id`` -> cookie_id on web,
device_id in apps (one of the two is required). The export has no event id: the touchpoint's is
``ga4:`` + a hash of the row's content, so an exported row read twice is a duplicate and the id is
the same whether the row came from the table, a JSON extract (INT64 as strings) or an Avro extract.

==========================  ==========================================================
event_name                  event_type
==========================  ==========================================================
page_view / screen_view     page_view / screen_view
session_start               app_open in apps (kept as session_start on web)
first_open                  app_open
login / sign_up             login / signup
search, view_search_results search
add_to_cart                 add_to_cart
begin_checkout              checkout_started
purchase / refund           order_placed / refund_issued (amount from ecommerce, currency param)
form_submit / click         form_submit / click
app_exception               app_crash when its ``fatal`` parameter is set, else app_exception
exception                   web_error
anything else               its own name (``scroll``, ``video_start``, ``user_engagement``, ...)
==========================  ==========================================================

``event_params`` become attributes under their keys (the first non-null of string_value,
int_value, float_value, double_value), ``user_properties`` under ``user.<key>``, nested columns
under dotted names (``device.category``, ``geo.country``, ``traffic_source.medium``); the native
channels' attribute names are added (``url``/``referrer`` from page_location/page_referrer;
``platform``, ``app_version``, ``screen``). ``ga_session_id`` is only unique per user: the
touchpoint's session_id is ``<user_pseudo_id>:<ga_session_id>``.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from ..errors import TouchpointError
from .adapter import Mapped, SourceAdapter, epoch_time, text

_PLATFORMS = {"WEB": "web", "ANDROID": "app", "IOS": "app"}
_CENT = Decimal("0.01")


def param_value(value: Mapping[str, Any] | None) -> Any:
    """The set value of a GA4 ``value`` struct (string, int, float or double), or None."""
    if not value:
        return None
    for key in ("string_value", "int_value", "float_value", "double_value"):
        if value.get(key) is not None:
            return value[key]
    return None


def _truthy(value: Any) -> bool:
    return value in (1, True, "1", "true", "TRUE", "True")


class Ga4Adapter(SourceAdapter):
    name = "ga4"
    schema_name = "raw_ga4_event"
    produces = ("web", "app")
    int_strings = True  # BigQuery JSON extracts write INT64 as strings
    reads_tables = True
    not_attributes = frozenset({"event_name", "event_timestamp", "event_params", "user_id", "user_pseudo_id",
                                "user_properties", "platform"})
    EVENT_MAP = {
        "page_view": "page_view",
        "screen_view": "screen_view",
        "first_open": "app_open",
        "login": "login",
        "sign_up": "signup",
        "search": "search",
        "view_search_results": "search",
        "add_to_cart": "add_to_cart",
        "begin_checkout": "checkout_started",
        "purchase": "order_placed",
        "refund": "refund_issued",
        "form_submit": "form_submit",
        "click": "click",
        "exception": "web_error",
    }

    def map(self, record: dict[str, Any], unknown: Mapping[str, Any]) -> Mapped:
        event_time = epoch_time(record["event_timestamp"], "event_timestamp", 1)
        platform = record["platform"]
        if platform is None:
            channel = "app" if (record["app_info"] or {}).get("id") else "web"
        elif platform.upper() in _PLATFORMS:
            channel = _PLATFORMS[platform.upper()]
        else:
            raise TouchpointError("invalid_value", f"platform: {platform!r:.30} is not one of WEB, ANDROID, IOS")
        if not record["user_id"] and not record["user_pseudo_id"]:
            raise TouchpointError("missing_field", "user_pseudo_id or user_id: a row needs one of them")
        params: dict[str, Any] = {}
        for entry in record["event_params"]:
            params[entry["key"]] = param_value(entry["value"])
        name = record["event_name"]
        if name == "session_start" and channel == "app":
            event_type = "app_open"
        elif name == "app_exception":
            event_type = "app_crash" if _truthy(params.get("fatal")) else "app_exception"
        else:
            event_type = self.mapped_type(name)

        attributes = self.rest(record, unknown)
        attributes.update({k: v for k, v in params.items() if v is not None})
        for entry in record["user_properties"]:
            attributes[f"user.{entry['key']}"] = param_value(entry["value"])
        attributes["event_name"] = name
        if platform:
            attributes["platform"] = platform.lower()
        if channel == "web":
            attributes.setdefault("url", params.get("page_location"))
            attributes.setdefault("referrer", params.get("page_referrer"))
        else:
            attributes.setdefault("app_version", (record["app_info"] or {}).get("version"))
            attributes.setdefault("screen", params.get("firebase_screen") or params.get("firebase_screen_class"))

        ecommerce = record["ecommerce"] or {}
        amount = currency = None
        value = ecommerce.get("purchase_revenue") if name == "purchase" else ecommerce.get("refund_value") if name == "refund" else None
        if value is None and name in ("purchase", "refund"):
            value = params.get("value")
        if value is not None:
            try:
                amount = Decimal(str(value)).quantize(_CENT)
            except InvalidOperation:
                raise TouchpointError("invalid_value", f"ecommerce value {value!r:.30} is not a number") from None
            if amount < 0 or abs(amount) >= Decimal(10) ** 16:
                raise TouchpointError("invalid_value", f"ecommerce value {value!r:.30} is out of range")
            currency = text(params.get("currency"))
            currency = currency.upper() if currency else None
        pseudo = record["user_pseudo_id"]
        session = params.get("ga_session_id")
        # the row's content (a null column is the same as an absent one: extracts differ there)
        content = {**record, **{k: v for k, v in unknown.items() if v is not None}}
        digest = hashlib.blake2b(json.dumps(content, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()
        return Mapped(
            event_id=digest,
            channel=channel,
            event_type=event_type,
            event_time=event_time,
            identifiers=[("customer_id", record["user_id"]), ("device_id" if channel == "app" else "cookie_id", pseudo)],
            attributes=attributes,
            session_id=f"{pseudo}:{text(session)}" if session is not None and pseudo else None,
            order_id=ecommerce.get("transaction_id") or text(params.get("transaction_id")),
            amount=amount,
            currency=currency,
        )
