"""Experience scoring: the model file (model), touchpoint signals (signals), decay arithmetic
(cumulative), per-day states and rows (daily), the combined view across roles (combined), survey
answers and aggregates (surveys) and calibration against survey answers (calibration).

Journeys live in :mod:`touchline.transforms.journeys`; the incremental per-person stage that ties
them together is :mod:`touchline.transforms.experience`. The math is documented in docs/scoring.md.
"""
