"""Where the project's own files are: the checkout this package is installed from (``pip install -e .``)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
