"""edgeaudit: network-edge device hardening scanner (CIAJ guideline checks)."""

from __future__ import annotations

__version__ = "0.1.0"
