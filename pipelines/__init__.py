"""Touchline entry points: thin pipelines composed from :mod:`touchline.transforms`."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("touchline")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"
