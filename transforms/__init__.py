"""Touchline's transform library: one concern per module, each a composite PTransform or the
pure functions behind it. Pipelines compose these; nothing here imports ``touchline.pipelines``."""
