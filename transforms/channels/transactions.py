"""The 'transactions' channel: orders, payments, deliveries, refunds and partner payouts."""

import re
from typing import Any

from ..errors import TouchpointError
from .base import ChannelSpec, minor_to_amount

_CURRENCY = re.compile(r"[A-Z]{3}")


class TransactionsChannel(ChannelSpec):
    name = "transactions"
    schema_name = "raw_transaction_event"
    identifier_fields = {
        "customer_id": "customer_id",
        "partner_id": "partner_id",
        "email": "email",
        "phone": "phone",
        "card_fingerprint": "card_fingerprint",
    }
    reference_fields = {"order_id": "order_id"}
    attribute_fields = ("decline_reason",)

    def validate(self, record: dict[str, Any]) -> None:
        super().validate(record)
        if record["amount_minor"] < 0:
            raise TouchpointError("invalid_value", f"amount_minor: must be >= 0, got {record['amount_minor']}")
        if not _CURRENCY.fullmatch(record["currency"]):
            raise TouchpointError("invalid_value", f"currency: {record['currency']!r:.20} is not an ISO-4217 code")

    def enrich(self, record: dict[str, Any], touchpoint: dict[str, Any]) -> None:
        touchpoint["amount"] = minor_to_amount(record["amount_minor"])
        touchpoint["currency"] = record["currency"]
