"""Step labels: stable CamelCase from table, channel and input names.

Dataflow maps the steps of a running job to a replacement's by label (``--update``), so labels
are derived the same way everywhere: ``identity_map`` -> ``IdentityMap``, ``ga4-export`` -> ``Ga4Export``.
"""

from __future__ import annotations


def camel(name: str) -> str:
    """Stable CamelCase step label part."""
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


__all__ = ["camel"]
