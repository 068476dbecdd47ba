"""Settings of identity stitching: lookback, round bound, degree caps, extra blocklist values.

A small frozen dataclass so it pickles into the pipeline graph; pipelines build it from
``--identity_*`` flags (see ``touchline.pipelines.options``), tests construct it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..identifiers import KINDS
from .components import DEFAULT_MAX_ROUNDS

#: Maximum number of distinct identifiers one identifier may be linked to before it is quarantined
#: as shared (reason ``degree_cap``). On 10 days of sample data a customer_id is linked to at most 7
#: identifiers and every weak identifier to at most 3 (the all-zero device id, blocklisted anyway,
#: to 7); the caps leave room for years of cookie churn and new devices. Kiosks and shared inboxes
#: are linked to hundreds or thousands.
DEFAULT_DEGREE_CAPS: dict[str, int] = {
    "customer_id": 1000,
    "employee_id": 1000,
    "partner_id": 1000,
    "email": 100,
    "phone": 100,
    "card_fingerprint": 50,
    "device_id": 50,
    "cookie_id": 50,
}

DEFAULT_LOOKBACK_DAYS = 30


@dataclass(frozen=True)
class IdentityConfig:
    """How identities are stitched (every field has a safe default)."""

    #: re-attribute earlier touchpoints (late links, merges) at most this many days back
    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    #: contraction rounds unrolled before the exact in-memory finish of the residual
    max_rounds: int = DEFAULT_MAX_ROUNDS
    #: per-kind degree caps overriding DEFAULT_DEGREE_CAPS, as (kind, cap) pairs
    degree_caps: tuple[tuple[str, int], ...] = ()
    #: extra junk values, as (kind or "*", value) pairs, on top of the built-in graph.JUNK_ANY and graph.JUNK_BY_KIND
    blocklist: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self):
        if self.lookback_days < 0:
            raise ValueError(f"lookback_days must be >= 0, got {self.lookback_days}")
        if not 0 <= self.max_rounds <= 64:
            raise ValueError(f"max_rounds must be between 0 and 64, got {self.max_rounds}")
        for kind, cap in self.degree_caps:
            if kind not in KINDS:
                raise ValueError(f"degree cap for unknown identifier kind {kind!r}; kinds: {', '.join(KINDS)}")
            if cap < 1:
                raise ValueError(f"degree cap for {kind} must be >= 1, got {cap}")
        for kind, _value in self.blocklist:
            if kind != "*" and kind not in KINDS:
                raise ValueError(f"blocklist entry for unknown identifier kind {kind!r}; kinds: {', '.join(KINDS)}")

    def caps(self) -> dict[str, int]:
        return {**DEFAULT_DEGREE_CAPS, **dict(self.degree_caps)}
