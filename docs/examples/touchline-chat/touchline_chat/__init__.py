"""touchline-chat: a live-chat channel and a 'long hold time' signal for Touchline (worked example
of docs/extending.md)."""
