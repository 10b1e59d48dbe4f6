"""The check that a value is one Thrift binary struct whose every read stays inside it, made before
thriftpy2's Cython reader, which trusts the sizes it reads, is given the value."""

from __future__ import annotations

import struct
from typing import Final

# thriftpy2's Cython reader (cybin) reads past the end of its buffer instead of failing: a cut-off
# value yields made-up numbers, a string length it believes becomes a malloc of up to 2 GiB (a
# crash where that fails) and a string of memory it never read, and a list of 2**31 elements of a
# type it reads nothing for keeps the event loop for seconds. This walk reads each value as cybin
# reads (or skips) it, so that cybin reads what it lets through inside its bounds.

MAX_DEPTH: Final = 64
"""Nested structs and collections, the outermost struct included: cybin's own limit."""

STOP: Final = 0
# Bytes per value of the types of a fixed size: bool, byte, double, i16, i32, i64.
_FIXED: Final = {2: 1, 3: 1, 4: 8, 6: 2, 8: 4, 10: 8}
_STRING: Final = 11  # and binary: writers send both as type 11
_STRUCT: Final = 12
_MAP: Final = 13
_LISTS: Final = frozenset({14, 15})  # set, list
_WRITTEN: Final = frozenset({*_FIXED, _STRING, _STRUCT, _MAP, *_LISTS})
_SIZE = struct.Struct(">i")


class MalformedBinary(ValueError):
    """A value that is not exactly one well-formed Thrift binary struct."""


def check(value: bytes) -> None:
    """Raise MalformedBinary unless `value` is one binary struct, ending with its last byte.

    Only the types a binary writer writes are accepted (the fixed sizes, string, struct, map,
    set, list): cybin reads nothing for any other, so a list of 2**31 of them would cost it
    2**31 turns for no byte. Every element then takes at least a byte, so a collection claiming
    more elements than there are bytes left is refused before any is visited.
    """
    length = len(value)
    walk: _Walk | None = None
    at = 0
    # The outermost struct's strings and fixed-size fields, most of a record, are walked here
    # rather than in _Walk: this loop is most of the check's cost. A field that runs past the
    # end ends the loop.
    while at < length:
        kind = value[at]
        at += 3  # the type and the i16 field id
        if kind == _STRING and at + 4 <= length:
            (size,) = _SIZE.unpack_from(value, at)
            if size < 0:
                raise MalformedBinary(f"a string of {size} bytes")
            at += 4 + size
        elif kind in _FIXED:
            at += _FIXED[kind]
        elif kind == STOP:
            if at - 2 != length:
                raise MalformedBinary("bytes after the struct")
            return
        else:
            if walk is None:
                walk = _Walk(value)
            at = walk.value_end(kind, at, MAX_DEPTH - 1)
    raise MalformedBinary("cut off inside a struct")


class _Walk:
    """A walk through one value's nested structs and collections."""

    def __init__(self, value: bytes) -> None:
        self._value = value
        self._length = len(value)

    def value_end(self, kind: int, at: int, depth: int) -> int:
        """Where the value of type `kind` starting `at` ends; raise if it does not end inside."""
        value, length = self._value, self._length
        fixed = _FIXED.get(kind)
        if fixed is not None:
            end = at + fixed
        elif kind == _STRING:
            if at + 4 > length:
                raise MalformedBinary("cut off in a string's length")
            (size,) = _SIZE.unpack_from(value, at)
            if size < 0:
                raise MalformedBinary(f"a string of {size} bytes")
            end = at + 4 + size
        elif kind == _STRUCT:
            end = self._struct_end(at, depth)
        elif kind in _LISTS:
            if at + 5 > length:
                raise MalformedBinary("cut off in a list's header")
            (size,) = _SIZE.unpack_from(value, at + 1)
            end = self._elements_end((value[at],), size, at + 5, depth)
        elif kind == _MAP:
            if at + 6 > length:
                raise MalformedBinary("cut off in a map's header")
            (size,) = _SIZE.unpack_from(value, at + 2)
            end = self._elements_end((value[at], value[at + 1]), size, at + 6, depth)
        else:
            raise MalformedBinary(f"type {kind}, which no binary writer writes")
        if end > length:
            raise MalformedBinary(f"a value of type {kind} cut off")
        return end

    def _struct_end(self, at: int, depth: int) -> int:
        if depth <= 0:
            raise MalformedBinary(f"nested deeper than {MAX_DEPTH}")
        value, length = self._value, self._length
        while at < length:
            kind = value[at]
            if kind == STOP:
                return at + 1
            at = self.value_end(kind, at + 3, depth - 1)  # after the type and the i16 field id
        raise MalformedBinary("cut off inside a struct")

    def _elements_end(self, kinds: tuple[int, ...], size: int, at: int, depth: int) -> int:
        if depth <= 0:
            raise MalformedBinary(f"nested deeper than {MAX_DEPTH}")
        if not _WRITTEN.issuperset(kinds):
            raise MalformedBinary(f"elements of types {kinds}, which no binary writer writes")
        if not 0 <= size <= self._length - at:
            raise MalformedBinary(f"a collection of {size} elements with {self._length - at} bytes left")
        widths = [_FIXED.get(kind) for kind in kinds]
        if None not in widths:
            # Fixed sizes: the end is known without visiting each element.
            return at + size * sum(width or 0 for width in widths)
        for _ in range(size):
            for kind in kinds:
                at = self.value_end(kind, at, depth - 1)
        return at
