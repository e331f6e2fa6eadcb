"""serde_json's behaviour where the surfaces show it: its error texts and its ``Value``.

Rust words a row that does not decode as ``sqlite store JSON error: <serde_json message>`` and
re-serializes stored provider arguments through ``serde_json::Value``. This module gives the
same texts: ``syntax_error`` walks the text as serde_json's parser does (same messages, same
``line``/``column``: bytes consumed, or the peeked byte); ``data_error`` words the two data errors
a stored row shows at its top level (a missing field, a value of the wrong shape); deeper data
errors keep fastpool's own wording. ``parse_value`` / ``dumps_value`` are ``Value``'s reading
(keys sorted, the last duplicate wins, ``-0`` a float, integers past ``u64`` floats) and writing
(ryu's float text).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from .._schema import OPT, Model, R

__all__ = ["syntax_error", "data_error", "parse_value", "dumps_value"]

_WS = b" \n\t\r"
_IDENTS = {ord("n"): b"ull", ord("t"): b"rue", ord("f"): b"alse"}
_ESCAPES = b'"\\/bfnrtu'


class _Syntax(Exception):
    def __init__(self, message: str, index: int) -> None:
        self.message, self.index = message, index


def _at(data: bytes, index: int) -> str:
    line = data.count(b"\n", 0, index) + 1
    column = index - (data.rfind(b"\n", 0, index) + 1)
    return f"line {line} column {column}"


class _Parser:
    """serde_json's grammar: ``error`` is the position after what was consumed, ``peek`` the
    position of the byte looked at (both capped at the end of the text)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.index = data, 0

    def fail(self, message: str, peeked: bool = False) -> _Syntax:
        return _Syntax(message, min(len(self.data), self.index + 1) if peeked else self.index)

    def peek(self) -> int | None:
        while self.index < len(self.data) and self.data[self.index] in _WS:
            self.index += 1
        return self.data[self.index] if self.index < len(self.data) else None

    def value(self) -> None:
        byte = self.peek()
        if byte is None:
            raise self.fail("EOF while parsing a value", peeked=True)
        self.index += 1
        if byte in _IDENTS:
            for expected in _IDENTS[byte]:
                if self.index >= len(self.data):
                    raise self.fail("EOF while parsing a value")
                self.index += 1
                if self.data[self.index - 1] != expected:
                    raise self.fail("expected ident")
        elif byte == ord('"'):
            self.string()
        elif byte == ord("-") or 48 <= byte <= 57:
            self.number(byte)
        elif byte == ord("["):
            self.sequence(ord("]"), "list", self.value)
        elif byte == ord("{"):
            self.sequence(ord("}"), "object", self.member)
        else:
            self.index -= 1
            raise self.fail("expected value", peeked=True)

    def sequence(self, close: int, name: str, item: Any) -> None:
        if self.peek() == close:
            self.index += 1
            return
        while True:
            item()
            byte = self.peek()
            if byte is None:
                raise self.fail(f"EOF while parsing a{'n' if name == 'object' else ''} {name}", peeked=True)
            if byte == close:
                self.index += 1
                return
            if byte != ord(","):
                raise self.fail(f"expected `,` or `{chr(close)}`", peeked=True)
            self.index += 1
            if self.peek() == close:
                raise self.fail("trailing comma", peeked=True)

    def member(self) -> None:
        byte = self.peek()
        if byte is None:
            raise self.fail("EOF while parsing an object", peeked=True)
        if byte != ord('"'):
            raise self.fail("key must be a string", peeked=True)
        self.index += 1
        self.string()
        byte = self.peek()
        if byte is None:
            raise self.fail("EOF while parsing an object", peeked=True)
        if byte != ord(":"):
            raise self.fail("expected `:`", peeked=True)
        self.index += 1
        self.value()

    def string(self) -> None:
        data = self.data
        while True:
            if self.index >= len(data):
                raise self.fail("EOF while parsing a string")
            byte = data[self.index]
            self.index += 1
            if byte == ord('"'):
                return
            if byte < 0x20:
                raise self.fail("control character (\\u0000-\\u001F) found while parsing a string")
            if byte == ord("\\"):
                if self.index >= len(data):
                    raise self.fail("EOF while parsing a string")
                escape = data[self.index]
                self.index += 1
                if escape not in _ESCAPES:
                    raise self.fail("invalid escape")
                if escape == ord("u"):
                    self.unicode_escape()

    def hex_escape(self) -> int:
        """The four hex digits after ``\\u``."""
        digits = self.data[self.index : self.index + 4]
        for digit in digits:
            self.index += 1
            if chr(digit) not in "0123456789abcdefABCDEF":
                raise self.fail("invalid escape")
        if len(digits) < 4:
            raise self.fail("EOF while parsing a string")
        return int(digits, 16)

    def unicode_escape(self) -> None:
        """serde_json's rule: a low surrogate alone, or a high one not followed by ``\\u`` and a
        low one, is an error."""
        first = self.hex_escape()
        if 0xDC00 <= first <= 0xDFFF:
            raise self.fail("lone leading surrogate in hex escape")
        if 0xD800 <= first <= 0xDBFF:
            for expected in b"\\u":
                if self.index >= len(self.data):
                    raise self.fail("EOF while parsing a string")
                if self.data[self.index] != expected:
                    raise self.fail("unexpected end of hex escape")
                self.index += 1
            if not 0xDC00 <= self.hex_escape() <= 0xDFFF:
                raise self.fail("lone leading surrogate in hex escape")

    def number(self, first: int) -> None:
        data = self.data

        def digits() -> int:
            start = self.index
            while self.index < len(data) and 48 <= data[self.index] <= 57:
                self.index += 1
            return self.index - start

        if first == ord("-"):
            if self.index >= len(data):
                raise self.fail("EOF while parsing a value")
            first = data[self.index]
            self.index += 1
            if not 48 <= first <= 57:
                raise self.fail("invalid number")
        if first == ord("0") and self.index < len(data) and 48 <= data[self.index] <= 57:
            raise self.fail("invalid number", peeked=True)
        digits()
        if self.index < len(data) and data[self.index] == ord("."):
            self.index += 1
            if not digits():
                raise self.fail("EOF while parsing a value" if self.index >= len(data) else "invalid number")
        if self.index < len(data) and data[self.index] in b"eE":
            self.index += 1
            if self.index < len(data) and data[self.index] in b"+-":
                self.index += 1
            if not digits():
                raise self.fail("EOF while parsing a value" if self.index >= len(data) else "invalid number")


def syntax_error(text: str) -> str | None:
    """serde_json's message for text that is not one JSON value, or ``None`` if it is one."""
    data = text.encode("utf-8", "surrogatepass")
    parser = _Parser(data)
    try:
        parser.value()
        if parser.peek() is not None:
            raise parser.fail("trailing characters", peeked=True)
    except _Syntax as error:
        return f"{error.message} at {_at(data, error.index)}"
    return None


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value!r}`"
    if isinstance(value, str):
        return f"string {json.dumps(value, ensure_ascii=False)}"
    return "map" if isinstance(value, dict) else "sequence"


def data_error(cls: type[Model], text: str, fallback: str) -> str:
    """serde_json's message for valid JSON that is not a ``cls`` at its top level; ``fallback``
    (fastpool's own message) for an error deeper inside."""
    data = text.encode("utf-8", "surrogatepass")
    where = _at(data, len(data.rstrip(_WS)))  # a top-level error: after the whole value
    value = orjson.loads(data)
    name = cls.__name__
    if isinstance(value, list):
        if not value:
            return f"invalid length 0, expected struct {name} with {len(cls._fields)} elements at {where}"
        return fallback
    if not isinstance(value, dict):
        return f"invalid type: {_describe(value)}, expected struct {name} at {where}"
    for field in cls._fields:
        if field.mark == R and field.spec.kind != OPT and field.wire not in value:
            return f"missing field `{field.wire}` at {where}"
    return fallback


# ---------------------------------------------------------------- serde_json::Value

_U64_MAX = 2**64 - 1
_I64_MIN = -(2**63)


def _integer(text: str) -> int | float:
    number = int(text)
    if text == "-0":
        return -0.0  # serde_json reads a negative zero integer as the float -0.0
    if _I64_MIN <= number <= _U64_MAX:
        return number
    return float(text)


def _constant(text: str) -> Any:
    raise ValueError(f"not JSON: {text}")


def _sorted_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    merged = dict(pairs)  # the last duplicate wins, as in serde_json's map
    return {key: merged[key] for key in sorted(merged)}


def parse_value(text: str) -> Any:
    """The ``serde_json::Value`` of ``text`` as Python values; ``ValueError`` with serde_json's
    message if it is not JSON."""
    message = syntax_error(text)
    if message is not None:
        raise ValueError(message)
    return json.loads(text, parse_int=_integer, parse_constant=_constant, object_pairs_hook=_sorted_object)


def dumps_value(value: Any) -> str:
    """``serde_json::to_string`` of a ``Value`` made by ``parse_value``."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_string(key)}:{dumps_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps_value(item) for item in value) + "]"
    if isinstance(value, float):
        return orjson.dumps(value).decode("ascii").replace("e+", "e")  # ryu writes 1e20, not 1e+20
    if isinstance(value, str):
        return _string(value)
    return orjson.dumps(value).decode("ascii")


def _string(text: str) -> str:
    return orjson.dumps(text).decode("utf-8")
