"""Writing the report files: those that hold unmasked secrets are readable by their owner only."""

from __future__ import annotations

import os
from pathlib import Path


def write_text(path: Path, text: str, secret: bool) -> None:
    """Write ``text`` to ``path``; with ``secret`` the file is 0600 before a byte is written, even if it existed."""
    if not secret:
        path.write_text(text, encoding="utf-8")
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an older 0644 file of the same name keeps its mode through O_CREAT
    except OSError:
        os.close(fd)
        raise
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
