"""The 'payments' source adapter: card-payment charge and refund objects (Stripe-shaped) -> transactions touchpoints.

=======  =======================  ========================================================
object   status                   event_type
=======  =======================  ========================================================
charge   succeeded                payment_succeeded
charge   failed                   payment_declined (``decline_reason`` = outcome.reason, else failure_code)
charge   pending                  payment_pending
refund   succeeded, pending       refund_issued
refund   failed, canceled         refund_failed
refund   requires_action          refund_requires_action
=======  =======================  ========================================================

The event id is ``payments:<id>:<status>``: a charge exported while pending and again once it
succeeded is two events, the same charge exported twice in one status is a duplicate.
Identifiers: ``metadata.customer_id`` -> customer_id (the processor's own ``cus_...`` id is kept as
the attribute ``customer``: it is not your customer id and would block stitching as a second unique
id), ``receipt_email`` / ``billing_details.email`` -> email, ``billing_details.phone`` -> phone,
``payment_method_details.card.fingerprint`` -> card_fingerprint. A refund carries identifiers only
when its ``charge`` is expanded (the charge object instead of its id): export refunds with
``expand[]=charge``. Amounts are in the currency's smallest unit: divided by 100, by 1 for
zero-decimal currencies (JPY, KRW, ...) and by 1000 for three-decimal ones (BHD, KWD, ...).
``order_id``: ``metadata.order_id``, else the payment intent.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Mapping

from ..errors import TouchpointError
from .adapter import Mapped, SourceAdapter, dig, epoch_time, flat, obj, text

#: currencies whose amounts have no minor unit / three decimals (per the processors' docs)
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_CENT = Decimal("0.01")
STATUSES = {
    "charge": {"succeeded": "payment_succeeded", "failed": "payment_declined", "pending": "payment_pending"},
    "refund": {"succeeded": "refund_issued", "pending": "refund_issued", "failed": "refund_failed",
               "canceled": "refund_failed", "requires_action": "refund_requires_action"},
}


def major_units(amount: int, currency: str) -> Decimal:
    exponent = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    return Decimal(amount).scaleb(-exponent).quantize(_CENT)


class PaymentsAdapter(SourceAdapter):
    name = "payments"
    schema_name = "raw_payment_object"
    produces = ("transactions",)
    enum_reasons = {"object": "unknown_event_type"}
    not_attributes = frozenset({"id", "object", "amount", "currency", "status", "created", "receipt_email",
                                "billing_details", "payment_method_details", "outcome", "charge", "metadata"})
    EVENT_MAP = {"charge.succeeded": "payment_succeeded", "charge.failed": "payment_declined",
                 "refund.succeeded": "refund_issued", "refund.pending": "refund_issued"}

    def map(self, record: dict[str, Any], unknown: Mapping[str, Any]) -> Mapped:
        kind, status = record["object"], record["status"]
        event_type = STATUSES[kind].get(status)
        if event_type is None:
            raise TouchpointError("invalid_value", f"status: {status!r:.30} is not a {kind} status "
                                                   f"({', '.join(STATUSES[kind])})")
        event_time = epoch_time(record["created"], "created", 1_000_000)
        if not 0 <= record["amount"] < 10**17:
            raise TouchpointError("invalid_value", f"amount: must be between 0 and 10^17 minor units, got {record['amount']}")
        if not _CURRENCY.fullmatch(record["currency"]):
            raise TouchpointError("invalid_value", f"currency: {record['currency']!r:.20} is not an ISO-4217 code")
        currency = record["currency"].upper()
        charge = record["charge"]
        expanded = obj(charge, "charge") if isinstance(charge, dict) or (isinstance(charge, str) and charge.startswith("{")) else {}
        billing = obj(record["billing_details"], "billing_details")
        method = obj(record["payment_method_details"], "payment_method_details")
        outcome = obj(record["outcome"], "outcome")
        metadata = {**(expanded.get("metadata") or {}), **record["metadata"]}
        identifiers = [
            ("customer_id", metadata.get("customer_id")),
            ("email", record["receipt_email"]), ("email", billing.get("email")), ("phone", billing.get("phone")),
            ("card_fingerprint", dig(method, "card", "fingerprint")),
            ("email", expanded.get("receipt_email")), ("email", dig(expanded, "billing_details", "email")),
            ("phone", dig(expanded, "billing_details", "phone")),
            ("card_fingerprint", dig(expanded, "payment_method_details", "card", "fingerprint")),
        ]
        attributes = self.rest(record, unknown)
        for prefix, part in (("billing_details", billing), ("payment_method_details", method), ("outcome", outcome)):
            for key, value in part.items():
                if key not in ("email", "phone"):
                    attributes.update(flat(f"{prefix}.{key}", value))
        attributes.pop("payment_method_details.card.fingerprint", None)
        for key, value in metadata.items():
            if key != "customer_id":
                attributes[f"metadata.{key}"] = value
        attributes["charge"] = expanded.get("id") if expanded else charge
        attributes["status"] = status
        attributes["object"] = kind
        if kind == "charge" and status == "failed":
            attributes["decline_reason"] = outcome.get("reason") or record["failure_code"] or "unknown"
        return Mapped(
            event_id=f"{record['id']}:{status}",
            channel="transactions",
            event_type=event_type,
            event_time=event_time,
            identifiers=identifiers,
            attributes=attributes,
            order_id=text(metadata.get("order_id")) or record["payment_intent"] or expanded.get("payment_intent"),
            amount=major_units(record["amount"], currency),
            currency=currency,
        )
