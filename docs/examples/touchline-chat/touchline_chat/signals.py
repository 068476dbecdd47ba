"""The 'long hold time' signal: a support or chat touchpoint whose customer waited longer than a
threshold (from the model file) for an agent."""

from touchline.transforms.scoring.plugins import SignalPlugin, number


class LongHoldTime(SignalPlugin):
    name = "long_hold_time"
    doc = "hold_seconds above threshold_seconds"
    params = {"threshold_seconds": (float, 300.0)}

    def matches(self, touchpoint):
        # attributes are text; a missing or non-numeric value is NaN, which is never above the threshold
        held = number((touchpoint.get("attributes") or {}).get("hold_seconds"))
        return held > self.param("threshold_seconds")
