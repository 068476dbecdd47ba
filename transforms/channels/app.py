"""The 'app' channel: mobile app SDK events."""

from .base import ChannelSpec


class AppChannel(ChannelSpec):
    name = "app"
    schema_name = "raw_app_event"
    identifier_fields = {
        "customer_id": "customer_id",
        "employee_id": "employee_id",
        "partner_id": "partner_id",
        "email": "email",
        "device_id": "device_id",
    }
    reference_fields = {"session_id": "session_id", "order_id": "order_id"}
    attribute_fields = ("platform", "app_version", "screen")
