"""The 'support' channel: help-desk ticket steps (contacts, replies, resolutions, CSAT)."""

from .base import ChannelSpec


class SupportChannel(ChannelSpec):
    name = "support"
    schema_name = "raw_support_event"
    identifier_fields = {
        "customer_id": "customer_id",
        "employee_id": "employee_id",
        "partner_id": "partner_id",
        "requester_email": "email",
        "requester_phone": "phone",
    }
    reference_fields = {"ticket_id": "ticket_id"}
    attribute_fields = ("contact_method", "queue", "agent_id")
