"""Compiled gettext catalogs for the tests, written without GNU gettext installed."""

from __future__ import annotations

import struct
from collections.abc import Mapping


def mo_bytes(messages: Mapping[str, str]) -> bytes:
    """A compiled gettext catalog (GNU `.mo`, little-endian, no hash table) holding
    `messages` and the header entry that declares UTF-8: what `msgfmt` and Django's
    `compilemessages` write, without needing GNU gettext installed."""
    entries = {"": "Content-Type: text/plain; charset=UTF-8\n", **messages}
    keys = sorted(entries)
    originals = [k.encode() for k in keys]
    translated = [entries[k].encode() for k in keys]
    start = 28 + 16 * len(keys)  # the header, then two tables of (length, offset)
    tables, data = [b"", b""], b""
    for column, texts in enumerate((originals, translated)):
        for text in texts:
            tables[column] += struct.pack("<2I", len(text), start + len(data))
            data += text + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, len(keys), 28, 28 + 8 * len(keys), 0, 0)
    return header + tables[0] + tables[1] + data
