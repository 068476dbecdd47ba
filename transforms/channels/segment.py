"""The 'segment' source adapter: Segment / RudderStack tracking-spec messages -> web and app touchpoints.

=========================  ===========  =====================================================
message                    channel      event_type
=========================  ===========  =====================================================
page                       web          page_view
screen                     app          screen_view (``name`` -> attribute ``screen``)
track                      app if the   ``EVENT_MAP`` below (semantic events of the spec), else
                           context says the event name as snake_case (``Video Played`` ->
                           so, else web ``video_played``)
identify, alias            app / web    identify (an identity link: anonymous id + user id + traits)
group                      app / web    group (``groupId`` -> attribute)
=========================  ===========  =====================================================

A track call is an app event when ``context.app`` or ``context.device`` is present, ``context.os``
names iOS/Android, or the library is a mobile one; otherwise web. Identifiers: ``userId`` ->
customer_id; ``anonymousId`` (and ``previousId`` of an alias) -> cookie_id on web, device_id in
apps; ``context.device.id`` -> device_id; ``traits.email`` / ``context.traits.email`` /
``properties.email`` -> email; ``traits.phone`` / ``context.traits.phone`` -> phone.

Survey answers: a track event ``Survey Responded`` (or ``Survey Submitted``) with
``properties.survey_kind`` (nps, csat, ces) and an integer ``properties.score`` is a
survey_response. Attributes: ``properties`` keys as they are (like native channels), the rest
under dotted names (``context.page.url``, ``traits.plan``), plus the native channels' names
(``url``, ``referrer``, ``user_agent``; ``platform``, ``app_version``, ``screen``) so model
matchers written for them apply. ``sentAt``/``receivedAt`` are transport metadata and not kept,
so a retried message is an exact duplicate.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import TouchpointError
from .adapter import Mapped, SourceAdapter, dig, flat, obj, text
from .base import parse_timestamp

_MOBILE_OS = ("ios", "ipados", "android")
_MOBILE_LIBRARIES = ("analytics-ios", "analytics-android", "analytics-react-native", "analytics-flutter",
                     "analytics-kotlin", "analytics-swift", "rudder-ios", "rudder-android", "rudderstack-ios",
                     "rudderstack-android", "rudder-react-native", "rudder-flutter")
SURVEY_EVENTS = ("Survey Responded", "Survey Submitted")


class SegmentAdapter(SourceAdapter):
    name = "segment"
    schema_name = "raw_segment_message"
    produces = ("web", "app")
    enum_reasons = {"type": "unknown_event_type"}
    not_attributes = frozenset({"messageId", "type", "anonymousId", "userId", "previousId", "timestamp",
                                "originalTimestamp", "sentAt", "receivedAt", "properties", "traits", "context",
                                "event", "name", "channel"})
    #: track event names of the Segment spec (E-commerce v2, mobile lifecycle, B2B SaaS) -> event types
    EVENT_MAP = {
        "Products Searched": "search",
        "Product Added": "add_to_cart",
        "Checkout Started": "checkout_started",
        "Checkout Abandoned": "checkout_abandoned",
        "Cart Abandoned": "checkout_abandoned",
        "Order Completed": "order_placed",
        "Order Cancelled": "order_cancelled",
        "Order Refunded": "refund_issued",
        "Signed Up": "signup",
        "Signed In": "login",
        "Signed Out": "logout",
        "Application Opened": "app_open",
        "Application Crashed": "app_crash",
        "Form Submitted": "form_submit",
        "Survey Responded": "survey_response",
        "Survey Submitted": "survey_response",
    }

    @staticmethod
    def _is_app(context: dict[str, Any]) -> bool:
        if isinstance(context.get("app"), dict) or isinstance(context.get("device"), dict):
            return True
        os_name = str(dig(context, "os", "name") or "").lower()
        library = str(dig(context, "library", "name") or "").lower()
        return os_name in _MOBILE_OS or library in _MOBILE_LIBRARIES

    def map(self, record: dict[str, Any], unknown: Mapping[str, Any]) -> Mapped:
        kind = record["type"]
        properties = obj(record["properties"], "properties")
        traits = obj(record["traits"], "traits")
        context = obj(record["context"], "context")
        if not record["userId"] and not record["anonymousId"]:
            raise TouchpointError("missing_field", "userId or anonymousId: a message needs one of them")
        stamp_field = next((f for f in ("timestamp", "originalTimestamp", "receivedAt") if record[f]), None)
        if stamp_field is None:
            raise TouchpointError("missing_field", "timestamp: required (or originalTimestamp / receivedAt)")
        event_time = parse_timestamp(record[stamp_field], stamp_field)

        if kind == "page":
            channel, event_type = "web", "page_view"
        elif kind == "screen":
            channel, event_type = "app", "screen_view"
        else:
            channel = "app" if self._is_app(context) else "web"
            if kind == "track":
                if not record["event"]:
                    raise TouchpointError("missing_field", "event: a track call needs an event name")
                event_type = self.mapped_type(record["event"])
            else:  # identify, alias, group
                event_type = "group" if kind == "group" else "identify"

        anonymous_kind = "device_id" if channel == "app" else "cookie_id"
        context_traits = obj(context.get("traits"), "context.traits")
        identifiers = [("customer_id", record["userId"]), (anonymous_kind, record["anonymousId"])]
        if kind == "alias":
            identifiers.append((anonymous_kind, record["previousId"]))
        if channel == "app":
            identifiers.append(("device_id", text(dig(context, "device", "id"))))
        for source in (traits, context_traits, properties):
            identifiers.append(("email", text(source.get("email"))))
            identifiers.append(("phone", text(source.get("phone"))))

        survey = None
        if event_type == "survey_response":
            kind_value, score = properties.get("survey_kind"), properties.get("score")
            if not isinstance(kind_value, str) or score is None:
                raise TouchpointError("missing_field", "properties.survey_kind and properties.score: a survey answer needs both")
            if isinstance(score, float) and score.is_integer():
                score = int(score)
            survey = (kind_value.lower(), score)

        attributes = self.rest(record, unknown)
        for key, value in properties.items():
            if key not in ("email", "phone"):
                attributes[key] = value
        for prefix, part in (("traits", traits), ("context", context)):
            for key, value in part.items():
                if key != "traits":
                    attributes.update(flat(f"{prefix}.{key}", value))
        for key, value in context_traits.items():
            attributes.update(flat(f"context.traits.{key}", value))
        for key in [k for k in attributes if k.rsplit(".", 1)[-1] in ("email", "phone")]:
            del attributes[key]  # identifiers: hashed above, never repeated as attributes
        if record["event"]:
            attributes["event"] = record["event"]
        if record["name"]:
            attributes["screen" if kind == "screen" else "name"] = record["name"]
        attributes["segment_type"] = kind
        if record["channel"]:
            attributes["segment_channel"] = record["channel"]
        if channel == "web":
            attributes.setdefault("url", dig(context, "page", "url"))
            attributes.setdefault("referrer", dig(context, "page", "referrer"))
            attributes.setdefault("user_agent", context.get("userAgent"))
        else:
            os_name = dig(context, "os", "name")
            attributes.setdefault("platform", str(os_name).lower() if os_name else None)
            attributes.setdefault("app_version", dig(context, "app", "version"))
        return Mapped(
            event_id=record["messageId"],
            channel=channel,
            event_type=event_type,
            event_time=event_time,
            identifiers=identifiers,
            attributes=attributes,
            session_id=text(properties.get("session_id")) or text(context.get("sessionId")),
            order_id=text(properties.get("order_id")) or text(properties.get("orderId")),
            survey=survey,
        )
