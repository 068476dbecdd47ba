"""The 'web' channel: website tracker events."""

from .base import ChannelSpec


class WebChannel(ChannelSpec):
    name = "web"
    schema_name = "raw_web_event"
    identifier_fields = {
        "customer_id": "customer_id",
        "employee_id": "employee_id",
        "partner_id": "partner_id",
        "email": "email",
        "cookie_id": "cookie_id",
    }
    reference_fields = {"session_id": "session_id", "order_id": "order_id"}
    attribute_fields = ("url", "referrer", "http_status", "user_agent")
