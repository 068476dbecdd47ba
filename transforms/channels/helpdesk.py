"""The 'helpdesk' source adapter: help-desk ticket audits (Zendesk-style exports) -> support touchpoints.

One audit is one update of a ticket; it becomes one touchpoint, named after the most telling
event it holds (first match wins):

=====================================================  ===================================
the audit has                                          event_type
=====================================================  ===================================
a SatisfactionRating with score good / bad / 1-5       survey_response (CSAT: good = 5, bad = 1)
a Create event                                         ticket_opened
a status change to solved                              ticket_resolved
a status change to closed                              ticket_closed (attribute resolution:
                                                       resolved after solved, else unresolved)
a status change from solved/closed to an open status   ticket_reopened
a public comment by someone other than the requester   agent_response
a public comment by the requester                      customer_contact
a status change to pending                             agent_response (waiting for the requester)
a status change to hold                                ticket_on_hold
anything else (private notes, tags, offered ratings)   ticket_updated
=====================================================  ===================================

Identifiers: ``requester.email`` -> email, ``requester.phone`` -> phone, ``requester.external_id``
-> customer_id. ``via.channel`` becomes ``contact_method`` like the native support channel (voice
-> phone, email -> email, chat / native_messaging / mobile_sdk -> chat, web -> web_form, others as
they are; the raw value stays in ``via.channel``). Every field change is kept as ``change.<field>`` (with
``previous.<field>``); comment and rating texts are free text and are not copied (their length is).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..errors import TouchpointError
from .adapter import Mapped, SourceAdapter, text
from .base import parse_timestamp

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
_CONTACT = {"voice": "phone", "phone": "phone", "email": "email", "mail": "email", "chat": "chat",
            "native_messaging": "chat", "mobile_sdk": "chat", "web": "web_form", "web_form": "web_form",
            "web_widget": "web_form", "help_center": "web_form"}
_CSAT = {"good": 5, "bad": 1}


def _status(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in STATUSES:
        raise TouchpointError("invalid_value", f"{where}: {value!r:.30} is not a ticket status ({', '.join(STATUSES)})")
    return value.lower()


class HelpdeskAdapter(SourceAdapter):
    name = "helpdesk"
    schema_name = "raw_helpdesk_audit"
    produces = ("support",)
    not_attributes = frozenset({"id", "ticket_id", "created_at", "requester", "events", "status", "via"})
    EVENT_MAP = {
        "SatisfactionRating": "survey_response",
        "Create": "ticket_opened",
        "solved": "ticket_resolved",
        "closed": "ticket_closed",
        "reopened": "ticket_reopened",
        "agent_comment": "agent_response",
        "requester_comment": "customer_contact",
        "pending": "agent_response",
    }

    def map(self, record: dict[str, Any], unknown: Mapping[str, Any]) -> Mapped:
        event_time = parse_timestamp(record["created_at"], "created_at")
        events = record["events"]
        if not events:
            raise TouchpointError("invalid_value", "events: an audit without events")
        requester = record["requester"] or {}
        requester_id = requester.get("id")
        attributes = self.rest(record, unknown)
        kinds, survey, created, comment = [], None, False, None
        change: tuple[str | None, str | None] | None = None
        offered = None
        for i, ev in enumerate(events):
            kind = ev["type"]
            field_name = ev["field_name"]
            kinds.append(f"{kind}:{field_name}" if field_name else kind)
            if kind == "Create":
                created = True
            if kind in ("Create", "Change") and field_name:
                if field_name == "status":
                    change = (_status(ev["previous_value"], f"events[{i}].previous_value"),
                              _status(ev["value"], f"events[{i}].value"))
                attributes[f"change.{field_name}"] = ev["value"]
                if ev["previous_value"] is not None:
                    attributes[f"previous.{field_name}"] = ev["previous_value"]
            elif kind == "Comment" and ev["public"] is not False:
                author = ev["author_id"] if ev["author_id"] is not None else record["author_id"]
                by_agent = author is not None and requester_id is not None and author != requester_id
                comment = comment or ("agent_comment" if by_agent else "requester_comment")
                attributes["comment_length"] = len(ev["body"] or "")
            elif kind == "SatisfactionRating":
                score = (ev["score"] or "").strip().lower()
                if score in _CSAT:
                    survey = ("csat", _CSAT[score])
                elif score.isdigit():
                    survey = ("csat", int(score))
                elif score in ("offered", "unoffered"):
                    offered = score
                else:
                    raise TouchpointError("invalid_value", f"events[{i}].score: {ev['score']!r:.30} is not good, bad, "
                                                           f"1-5, offered or unoffered")
                attributes["satisfaction"] = score
        status = _status(record["status"], "status")
        before, after = change if change else (None, None)
        if survey is not None:
            key = "SatisfactionRating"
        elif created:
            key = "Create"
        elif after == "solved":
            key = "solved"
        elif after == "closed":
            key = "closed"
        elif after in ("new", "open", "pending", "hold") and before in ("solved", "closed"):
            key = "reopened"
        elif comment:
            key = comment
        elif after == "pending":
            key = "pending"
        else:
            key = None
        event_type = self.EVENT_MAP[key] if key else ("ticket_on_hold" if after == "hold" else "ticket_updated")
        if key == "closed":
            attributes["resolution"] = "resolved" if before == "solved" else "unresolved"
        if offered and key is None:
            attributes["satisfaction"] = offered
        attributes["audit_events"] = ",".join(kinds)
        if status:
            attributes["status"] = status
        channel = (record["via"] or {}).get("channel")
        if channel:
            attributes["via.channel"] = channel
            attributes["contact_method"] = _CONTACT.get(channel.lower(), channel.lower())
        for key_name in [k for k in attributes if k.startswith(("change.", "previous.")) and isinstance(attributes[k], (list, dict))]:
            attributes[key_name] = json.dumps(attributes[key_name], sort_keys=True)
        return Mapped(
            event_id=f"{record['ticket_id']}:{record['id']}",
            channel="support",
            event_type=event_type,
            event_time=event_time,
            identifiers=[("email", requester.get("email")), ("phone", requester.get("phone")),
                         ("customer_id", requester.get("external_id"))],
            attributes=attributes,
            ticket_id=text(record["ticket_id"]),
            survey=survey,
        )
