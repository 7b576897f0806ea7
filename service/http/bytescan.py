"""The byte count that proves a large JSON body's arrays hold numbers only.

``to_array`` checks every element of a nested list for booleans, nulls, strings and objects; for a
large body, counting two kinds of bytes in the raw JSON (at C speed, with NumPy) proves the same, so
the arrays convert straight to float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Below this size the exact per-element checks are cheaper than counting bytes.
BYTE_SCAN_MIN = 64 * 1024
_QUOTE = ord('"')
# JSON numbers, brackets, commas and whitespace are all bytes up to "e"; every letter of true, false
# and null but "a" and "e", braces, and non-ASCII bytes are above it.
_ABOVE_E = ord("e")
_LITERAL_HIGH_BYTES = {True: 3, False: 3, None: 4}  # "tru", "fls", "null"


def may_hold_non_numbers(raw: bytes, data: dict[str, Any]) -> bool:
    """Whether some array of this body may hold something other than numbers and nested arrays.

    Inside an array of numbers every byte is a digit, sign, point, "e"/"E", bracket, comma or
    whitespace: none is above "e" and none is a quote. A boolean, null, string or object brings at
    least one such byte. So counting those bytes in the whole body and comparing with the count
    outside the numeric-looking arrays (keys, strings, literals, braces) proves the arrays clean when
    the two match. An escape could hide a byte (``\\u0074``), so any backslash keeps the exact checks.

    Parameters
    ----------
    raw : bytes
        The body as received.
    data : dict
        The same body parsed.

    Returns
    -------
    bool
        False only when the arrays are proven to hold numbers and nested arrays only.
    """
    if len(raw) < BYTE_SCAN_MIN or b"\\" in raw:
        return True
    buf = np.frombuffer(raw, dtype=np.uint8)
    found = (int(np.count_nonzero(buf > _ABOVE_E)), int(np.count_nonzero(buf == _QUOTE)))
    return found != _bytes_outside_arrays(data)


def _high_bytes(text: str) -> int:
    return sum(b > _ABOVE_E for b in text.encode())


def _bytes_outside_arrays(value: Any) -> tuple[int, int]:
    """(bytes above "e", quotes) of ``value`` as JSON, skipping every list but lists of objects."""
    if isinstance(value, dict):
        high, quotes = 2, 0  # the braces
        for key, item in value.items():
            item_high, item_quotes = _bytes_outside_arrays(item)
            high += _high_bytes(key) + item_high
            quotes += 2 + item_quotes
        return high, quotes
    if isinstance(value, list):
        # Lists of objects (layers, parameters) are structure; any other list may reach to_array, so
        # it is left out of the count: a string or literal inside it then makes the counts differ.
        if value and isinstance(value[0], dict):
            high = quotes = 0
            for item in value:
                item_high, item_quotes = _bytes_outside_arrays(item)
                high, quotes = high + item_high, quotes + item_quotes
            return high, quotes
        return 0, 0
    if isinstance(value, str):
        return _high_bytes(value), 2
    if value is None or isinstance(value, bool):
        return _LITERAL_HIGH_BYTES[value], 0
    return 0, 0
