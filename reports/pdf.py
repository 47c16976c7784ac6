"""HTML to PDF through headless Chromium, when it is installed (the hand-off sheet).

Chromium runs as a separate process with a deadline, a new empty profile and no network
features (the flags Debian's Chromium needs to start quietly on a closed network); the page is
a local file with a Content-Security-Policy that loads nothing. Where Chromium is missing, the
HTML sheet (with its print CSS) is what the installer prints.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = (
    "--headless", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-pdf-header-footer",
)  # fmt: skip


def chromium() -> str | None:
    """Debian's Chromium, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def print_pdf(html: Path, pdf: Path, timeout: float = 60.0) -> str | None:
    """Print ``html`` to ``pdf``; None when done, else why not (never raises for a missing or failing browser)."""
    browser = chromium()
    if browser is None:
        return "chromium is not installed (apt-get install chromium): print the HTML sheet instead"
    pdf.unlink(missing_ok=True)  # an older sheet (another device's) is never taken for this one
    sandbox = ("--no-sandbox",) if os.geteuid() == 0 else ()  # Chromium refuses to run as root with its sandbox
    with tempfile.TemporaryDirectory(prefix="edgeaudit-chromium-") as profile:
        argv = [browser, *FLAGS, *sandbox, f"--user-data-dir={profile}", f"--print-to-pdf={pdf.resolve()}"]
        argv.append(html.resolve().as_uri())
        try:
            done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"chromium: {exc}"
    if done.returncode != 0 or not pdf.exists():
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no PDF written"]
        return f"chromium exited {done.returncode}: {tail[0]}"
    return None
