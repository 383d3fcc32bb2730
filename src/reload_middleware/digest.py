"""SHA-256 digests without loading OpenSSL into every server process.

`hashlib` loads OpenSSL's libcrypto as it is imported: 3.6 MB of resident memory in each
process that has not loaded it already. CPython's own SHA-256 module gives the same
digests for the short names and file contents we hash; `hashlib` stands in where that
module is missing (it is private to CPython: `_sha256` up to 3.11, `_sha2` since 3.12).

>>> sha256_hex(b"abc")[:16]
'ba7816bf8f01cfea'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_sha256: Callable[[bytes], Any]
try:
    from _sha2 import sha256 as _sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
except ImportError:
    try:
        from _sha256 import sha256 as _sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    except ImportError:
        from hashlib import sha256 as _sha256  # type: ignore[assignment,unused-ignore]


def sha256_hex(data: bytes) -> str:
    """The SHA-256 digest of `data`, in hexadecimal."""
    return str(_sha256(data).hexdigest())
