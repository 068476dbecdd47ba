"""Headless Chromium (Debian's ``chromium``) for tests that look at a rendered page.

:func:`chromium` finds the binary, installing it with ``tests/install_chromium.sh`` when missing
(``make test`` runs that script first); a machine where that is impossible fails the browser test
with one message saying how to install it. :func:`screenshot` and :func:`dump_dom` run it with the
flags this closed network needs (no background networking, component updates or sync: their
connections would be refused). :func:`pixels` / :func:`colour_counts` read a screenshot (Pillow).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1"]


def _find() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium() -> str:
    found = _find()
    if found:
        return found
    script = os.path.join(HERE, "install_chromium.sh")
    result = subprocess.run(["sh", script], capture_output=True, text=True, timeout=900)
    found = _find()
    if not found:
        pytest.fail("the report's browser test needs Chromium and it could not be installed: "
                    + (result.stderr.strip() or "install_chromium.sh failed")
                    + "\n  fix: apt-get install -y chromium (as root), then rerun; or deselect with -m 'not browser'",
                    pytrace=False)
    return found


def _run(binary: str, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="touchline-chromium-")
    try:
        return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(binary: str, url: str, out: str, width: int, height: int) -> None:
    result = _run(binary, [f"--window-size={width},{height}", f"--screenshot={out}", url])
    if not os.path.exists(out):
        raise AssertionError(f"chromium wrote no screenshot (exit {result.returncode}): {result.stderr.decode()[-2000:]}")


def dump_dom(binary: str, url: str) -> str:
    result = _run(binary, ["--dump-dom", url])
    if result.returncode != 0 or not result.stdout:
        raise AssertionError(f"chromium --dump-dom failed (exit {result.returncode}): {result.stderr.decode()[-2000:]}")
    return result.stdout.decode("utf-8")


def pixels(path: str):
    """The screenshot as an RGB Pillow image."""
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def colour_counts(image, colours: list[str], box: tuple[int, int, int, int] | None = None) -> dict[str, int]:
    """How many pixels of each exact colour (``#rrggbb``) the image (or a box of it) has."""
    region = image.crop(box) if box else image
    counts = {rgb: n for n, rgb in region.getcolors(maxcolors=1 << 24)}
    return {c: counts.get(tuple(bytes.fromhex(c.lstrip("#"))), 0) for c in colours}
