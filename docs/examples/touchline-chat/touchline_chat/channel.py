"""The 'chat' channel: live-chat conversations, one touchpoint per event."""

from touchline.transforms.channels import ChannelSpec


class ChatChannel(ChannelSpec):
    name = "chat"                       # --chat_input, counters chat.*, touchpoints with channel = chat
    schema_name = "raw_chat_event"      # touchline_chat/schemas/raw_chat_event.avsc
    identifier_fields = {"customer_id": "customer_id", "email": "email", "visitor_id": "cookie_id"}
    reference_fields = {"ticket_id": "conversation_id"}    # chat steps of one conversation form a ticket
    attribute_fields = ("queue", "hold_seconds")           # hold_seconds is what the signal reads
