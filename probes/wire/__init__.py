"""The one bounded reader under every hand-written binary parser (the shape of dnspython's wire Parser).

A ``Reader`` walks one buffer from the front. Every read checks that its bytes are there; running
short, a length that points past its window, or bytes left where none may be all raise the one
``MalformedResponse``, whose reason names the structure (``what``) and the field being read. No parser
does its own offset arithmetic: it reads fields, in order, and says where trailing bytes are an error
by calling ``expect_end``.

``restrict_to(n)`` confines the reads inside it to the next ``n`` bytes (a length-prefixed part: an
option, an attribute, a header whose length field covers it); on a normal exit the reader moves to the
end of those bytes, read or not. dnspython raises there instead: here a part whose every byte must be
understood says so itself, with ``expect_end`` inside the block, and one that may carry more than we
read (padding, optional fields, extensions) just ends. Windows nest; none reaches past its parent's.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from typing import Any

from profiles.errors import MalformedResponse

_U16, _U32, _U64 = struct.Struct(">H"), struct.Struct(">I"), struct.Struct(">Q")
_U16LE, _U32LE = struct.Struct("<H"), struct.Struct("<I")


class Reader:
    """Bounded reads over one buffer; ``what`` names it in every error ("IPP response", "RSN element")."""

    __slots__ = ("_end", "data", "pos", "what")

    def __init__(self, data: bytes | bytearray | memoryview, what: str, *, max_size: int | None = None) -> None:
        if max_size is not None and len(data) > max_size:
            raise MalformedResponse(f"{what} too large ({len(data)} bytes, at most {max_size})")
        self.data = bytes(data)
        self.what = what
        self.pos = 0
        self._end = len(self.data)

    @property
    def remaining(self) -> int:
        """Bytes left before the end of the current window."""
        return self._end - self.pos

    @property
    def at_end(self) -> bool:
        """Whether every byte of the current window has been read."""
        return self.pos == self._end

    def _short(self, n: int, field: str) -> MalformedResponse:
        left = self.remaining
        return MalformedResponse(
            f"{self.what}: truncated at byte {self.pos}: {field} needs {n} byte{'s' * (n != 1)}, {left} left"
        )

    def take(self, n: int, field: str, *, short: str | None = None) -> bytes:
        """The next ``n`` bytes; ``short`` replaces the default reason when they are not there."""
        if n < 0 or n > self.remaining:
            raise MalformedResponse(short) if short else self._short(n, field)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def skip(self, n: int, field: str, *, short: str | None = None) -> None:
        """Move past ``n`` bytes that are there but not read."""
        self.take(n, field, short=short)

    def rest(self) -> bytes:
        """Everything left in the current window."""
        return self.take(self.remaining, "the rest")

    def u8(self, field: str, *, short: str | None = None) -> int:
        """One unsigned byte."""
        return self.take(1, field, short=short)[0]

    def u16(self, field: str, *, short: str | None = None) -> int:
        """A big-endian (network order) unsigned 16-bit integer."""
        return int(_U16.unpack(self.take(2, field, short=short))[0])

    def u32(self, field: str, *, short: str | None = None) -> int:
        """A big-endian unsigned 32-bit integer."""
        return int(_U32.unpack(self.take(4, field, short=short))[0])

    def u64(self, field: str, *, short: str | None = None) -> int:
        """A big-endian unsigned 64-bit integer (NTP timestamps)."""
        return int(_U64.unpack(self.take(8, field, short=short))[0])

    def u16le(self, field: str, *, short: str | None = None) -> int:
        """A little-endian unsigned 16-bit integer (radiotap, 802.11 fields)."""
        return int(_U16LE.unpack(self.take(2, field, short=short))[0])

    def u32le(self, field: str, *, short: str | None = None) -> int:
        """A little-endian unsigned 32-bit integer (radiotap presence words)."""
        return int(_U32LE.unpack(self.take(4, field, short=short))[0])

    def unpack(self, fmt: struct.Struct | str, field: str, *, short: str | None = None) -> tuple[Any, ...]:
        """A fixed group of fields in one ``struct`` format, with its own byte order ('>', '<', '=')."""
        packer = fmt if isinstance(fmt, struct.Struct) else struct.Struct(fmt)
        return packer.unpack(self.take(packer.size, field, short=short))

    def counted(self, width: int, field: str, *, short: str | None = None) -> bytes:
        """Bytes preceded by their own big-endian length of ``width`` bytes (1, 2 or 4)."""
        length = int.from_bytes(self.take(width, f"{field} length", short=short), "big")
        return self.take(length, field, short=short)

    def align(self, boundary: int, field: str) -> None:
        """Skip padding up to the next multiple of ``boundary`` from the start of the buffer."""
        self.skip(-self.pos % boundary, f"padding before {field}")

    @contextlib.contextmanager
    def restrict_to(self, n: int, field: str, *, short: str | None = None) -> Iterator[None]:
        """Reads inside see only the next ``n`` bytes; leaving normally moves to their end."""
        if n < 0 or n > self.remaining:
            raise MalformedResponse(
                short or f"{self.what}: {field} of {n} bytes runs past the end ({self.remaining} left)"
            )
        saved, stop = self._end, self.pos + n
        self._end = stop
        try:
            yield
        finally:
            self._end = saved
        self.pos = stop  # only on a normal exit: an error propagates with the reader where it failed

    def expect_end(self, field: str = "message") -> None:
        """Refuse trailing bytes: the current window must be fully read."""
        if self.remaining:
            raise MalformedResponse(
                f"{self.what}: {self.remaining} trailing byte{'s' * (self.remaining != 1)} after the {field}"
            )
