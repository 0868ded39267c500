"""The C scanner of the JSON fast path (``statuswatch.core.decode._jsonscan``).

Hand-written cases cover each corner of the JSON grammar and of the scanner's
rules; hypothesis properties check that whenever the scanner vouches for a
record, ``json.loads`` and msgspec accept it and give the same field values
(soundness), and that it vouches for plain records (so the fast path is taken).
The oracle is ``json.loads`` with the pairs of each object kept (so duplicate
keys show) and the scanner's documented rules on top.

CI builds the extension: these tests fail, not skip, when it is missing.
"""

from __future__ import annotations

import gc
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

# (fails here if the extension is missing)
from statuswatch.core.decode import _jsonscan, batch, jsondecoder, timestamps

Field = tuple[tuple[str, ...], str]

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: The fields most cases read: every kind, nested paths sharing a parent.
FIELDS: list[Field] = [
    (("ts",), "i"),
    (("r", "status"), "i"),
    (("svc",), "s"),
    (("r", "name"), "d"),
    (("c", "id"), "s"),
    (("c", "user"), "f"),
    (("t",), "S"),
]
KEYS = ["ts", "r", "status", "svc", "name", "c", "id", "user", "t", "x", ""]


def scanner(fields: Sequence[Field] = FIELDS, max_depth: int = 64, max_bytes: int = 10**6) -> Any:
    assert jsondecoder.NATIVE_SCANNER is not None, "the C extension _jsonscan is not built"
    paths = tuple(tuple(k.encode() for k in path) for path, _ in fields)
    kinds = "".join(kind for _, kind in fields).encode()
    return jsondecoder.NATIVE_SCANNER(paths, kinds, max_depth, max_bytes)


def scan_all(
    sc: Any, fields: Sequence[Field], values: Sequence[Any]
) -> list[tuple[Any, ...] | None]:
    """Per value: ``None`` if not vouched, else the fields (without the "f" ones) in order."""
    n = len(values)
    n_ints = sum(kind in "im" for _, kind in fields)
    ints = np.full((n_ints, n), 12345, np.int64)
    ok = np.zeros(n, np.bool_)
    strs = sc.scan(values, ints, ok)
    assert len(strs) == sum(kind in "sSd" for _, kind in fields)
    assert all(len(col) == n for col in strs)
    out: list[tuple[Any, ...] | None] = []
    for i in range(n):
        if not ok[i]:
            assert all(col[i] == "" for col in strs) and not ints[:, i].any()
            out.append(None)
            continue
        row: list[Any] = []
        int_rows, str_cols = iter(ints), iter(strs)
        for _, kind in fields:
            if kind in "im":
                row.append(int(next(int_rows)[i]))
            elif kind != "f":
                row.append(next(str_cols)[i])
        out.append(tuple(row))
    return out


def scan1(value: Any, fields: Sequence[Field] = FIELDS, **kw: int) -> tuple[Any, ...] | None:
    return scan_all(scanner(fields, **kw), fields, [value])[0]


# -- the oracle ---------------------------------------------------------------


class _Pairs(list[tuple[str, Any]]):
    """One JSON object as its (key, value) pairs, duplicates kept."""


class _NotVouched(Exception):
    pass


_MISSING = object()


def _reject(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity: not JSON


def _depth(doc: Any) -> int:
    if isinstance(doc, _Pairs):
        return 1 + max((_depth(v) for _, v in doc), default=0)
    if isinstance(doc, list):
        return 1 + max((_depth(v) for v in doc), default=0)
    return 0


def _get(obj: _Pairs, key: str) -> Any:
    found = [v for k, v in obj if k == key]
    if len(found) > 1:
        raise _NotVouched(f"{key!r} twice")
    return found[0] if found else _MISSING


def _lookup(doc: _Pairs, path: tuple[str, ...]) -> Any:
    obj = doc
    for key in path[:-1]:
        value = _get(obj, key)
        if value is _MISSING:
            return _MISSING
        if not isinstance(value, _Pairs):
            raise _NotVouched(f"{key!r} is not an object")
        obj = value
    return _get(obj, path[-1])


def oracle(
    value: bytes, fields: Sequence[Field] = FIELDS, max_depth: int = 64
) -> tuple[Any, ...] | None:
    """What the scanner may vouch for, by ``json.loads``: the fields, or ``None``.

    The scanner is stricter in ways the parsed document does not show (escapes
    in needed strings and keys, lone surrogate escapes), so "vouched implies
    ``oracle`` is not ``None``" holds always and the converse for plain input only.
    """
    try:
        doc = json.loads(value.decode("utf-8"), object_pairs_hook=_Pairs, parse_constant=_reject)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(doc, _Pairs) or _depth(doc) > max_depth:
        return None
    row: list[Any] = []
    try:
        for path, kind in fields:
            v = _lookup(doc, path)
            if kind == "i":
                if type(v) is not int or not -(2**63) <= v < 2**63:
                    return None
            elif v is _MISSING and kind != "S":
                v = ""
            elif type(v) is not str:
                return None
            if kind == "d" and v == "-":
                v = ""
            if kind == "f":
                if row[-1] == "":
                    row[-1] = v
                continue
            row.append(v)
    except _NotVouched:
        return None
    return tuple(row)


# msgspec, as the decoders use it: a typed schema, unknown fields skipped
class _R(msgspec.Struct):
    status: Any = msgspec.UNSET
    name: Any = msgspec.UNSET


class _C(msgspec.Struct):
    id: Any = msgspec.UNSET
    user: Any = msgspec.UNSET


class _Doc(msgspec.Struct):
    ts: Any = msgspec.UNSET
    r: _R | None = None
    svc: Any = msgspec.UNSET
    c: _C | None = None
    t: Any = msgspec.UNSET


_MSGSPEC = msgspec.json.Decoder(_Doc)


def msgspec_fields(value: bytes) -> tuple[Any, ...]:
    """The fields of FIELDS as msgspec reads them (raises if msgspec rejects the record)."""
    d = _MSGSPEC.decode(value)

    def s(v: Any) -> Any:
        return "" if v is msgspec.UNSET else v

    r, c = d.r or _R(), d.c or _C()
    name = s(r.name)
    return (d.ts, r.status, s(d.svc), "" if name == "-" else name, s(c.id) or s(c.user), d.t)


GOOD = b'{"ts": 1680600000123, "r": {"status": 503, "name": "n"}, "svc": "billing", "t": "T"}'
GOOD_ROW = (1680600000123, 503, "billing", "n", "", "T")


def with_extra(extra: str) -> bytes:
    """GOOD with one more top-level member (a raw JSON text), or anything before its end."""
    return GOOD[:-1] + b", " + extra.encode() + b"}"


# -- hand-written cases -------------------------------------------------------


def test_a_plain_record() -> None:
    assert scan1(GOOD) == GOOD_ROW == oracle(GOOD) == msgspec_fields(GOOD)


@pytest.mark.parametrize(
    ("extra", "vouched"),
    [
        # strings and escapes in a skipped value
        ('"x": "a\\"b\\\\c\\/d\\b\\f\\n\\r\\t"', True),
        ('"x": "\\u00e9\\u20AC\\uD83D\\uDE00"', True),  # BMP, upper-case hex, a pair
        ('"x": "\\ud800"', False),  # a lone high surrogate (msgspec rejects it)
        ('"x": "\\udc00"', False),  # a lone low surrogate
        ('"x": "\\ud83d\\u0041"', False),  # high surrogate, then not a low one
        ('"x": "\\ud83dx"', False),
        ('"x": "\\u12"', False),
        ('"x": "\\u12g4"', False),
        ('"x": "\\x41"', False),
        ('"x": "\\\'"', False),
        ('"x": "\\', False),
        ('"x": "\x01"', False),  # raw control characters
        ('"x": "\x1f"', False),
        ('"x": "\t"', False),
        ('"x": "\x7f"', True),  # DEL is allowed
        ('"x": "grüß 😀"', True),
        # numbers
        ('"x": -0', True),
        ('"x": 0', True),
        ('"x": 1e5', True),
        ('"x": 1E+5', True),
        ('"x": -1.25e-5', True),
        ('"x": 1e400', True),
        ('"x": 123456789012345678901234567890', True),
        ('"x": 01', False),
        ('"x": -01', False),
        ('"x": 1.', False),
        ('"x": .5', False),
        ('"x": 1.e5', False),
        ('"x": 1e', False),
        ('"x": 1e+', False),
        ('"x": +1', False),
        ('"x": -', False),
        ('"x": 0x10', False),
        ('"x": NaN', False),
        ('"x": Infinity', False),
        ('"x": -Infinity', False),
        # literals
        ('"x": true, "y": false, "z": null', True),
        ('"x": tru', False),
        ('"x": True', False),
        ('"x": nul', False),
        ('"x": nulll', False),
        # arrays and objects
        ('"x": [], "y": {}, "z": [1, "a", {"b": [null]}]', True),
        ('"x": [1,]', False),
        ('"x": [,1]', False),
        ('"x": {"a"}', False),
        ('"x": {"a" 1}', False),
        ('"x": {"a": 1,}', False),
        ('"x": {1: 1}', False),
        ('"x": [1 2]', False),
        ('"x": {"a": 1} ]', False),
        ('"x": [', False),
        # keys
        ('"x": 1, "x": 2', True),  # duplicates of a key nobody needs are fine
        ('"": 1', True),
        ('"x": {"\\u0074s": 1}', True),  # an escaped key off the paths
        ('"\\u0074s": 1', False),  # an escaped key where a needed one may be: it may spell it
        ('"\\u0078": 1', False),
        ('"ts": 1', False),  # a needed key twice
        ('"r": {"status": 200}', False),  # an object on a path twice
        ('"svc": "other"', False),
    ],
)
def test_grammar_corners(extra: str, vouched: bool) -> None:
    value = with_extra(extra)
    got = scan1(value)
    assert (got is not None) == vouched, value
    if vouched:
        assert got == GOOD_ROW == oracle(value) == msgspec_fields(value)
    else:
        assert oracle(value) is None or "\\" in extra  # stricter than json.loads only there


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b" ",
        b"{",
        b"}",
        b"[]",
        b"[{}]",
        b'"x"',
        b"1",
        b"null",
        b"{}{}",
        b"{} {}",
        b"{}x",
        b"{},",
        b"\xef\xbb\xbf{}",  # a byte order mark is not JSON whitespace
        b"\x0c{}",  # neither is a form feed
        b"{}\x00",
        GOOD[:-1],
        GOOD + b"}",
        GOOD + b",",
        GOOD + b" x",
    ],
)
def test_not_a_single_object(value: bytes) -> None:
    assert scan1(value) is None


def test_truncated_everywhere() -> None:
    values = [GOOD[:i] for i in range(len(GOOD))]
    assert scan_all(scanner(), FIELDS, values) == [None] * len(values)


@pytest.mark.parametrize("ws", [b" ", b"\n", b"\r\n", b"\t", b" \t\r\n "])
def test_whitespace_everywhere(ws: bytes) -> None:
    value = ws + ws.join(json.dumps(json.loads(GOOD), indent=0).encode().split(b"\n")) + ws
    value = value.replace(b":", ws + b":" + ws).replace(b",", ws + b"," + ws)
    assert scan1(value) == GOOD_ROW == oracle(value)


def test_empty_object_and_missing_fields() -> None:
    assert scan1(b"{}") is None  # ts, r.status and t are required
    assert scan1(b'{"ts": 1, "r": {"status": 2}, "t": ""}') == (1, 2, "", "", "", "")
    assert scan1(b'{"ts": 1, "r": {"status": 2}, "t": "", "c": {}}') == (1, 2, "", "", "", "")
    assert scan1(b'{"ts": 1, "r": {"status": 2}}') is None  # t is required ("S")
    assert scan1(b'{"ts": 1, "t": "", "r": {}}') is None
    assert scan1(b'{"r": {"status": 2}, "t": ""}') is None


@pytest.mark.parametrize(
    ("member", "vouched"),
    [
        ('"c": null', False),  # an object on a path must be an object
        ('"c": []', False),
        ('"c": "x"', False),
        ('"c": 1', False),
        ('"c": {"id": null}', False),  # a str field: a string, not null
        ('"c": {"id": 5}', False),
        ('"c": {"id": ["a"]}', False),
        ('"c": {"id": "a\\u0062"}', False),  # an escape in a needed string
        ('"c": {"id": "a\\"b"}', False),
        ('"c": {"id": "ab", "id": "ab"}', False),
        ('"c": {"id": "ab", "i\\u0064": "cd"}', False),
        ('"c": {"id": "ab", "x": {"id": 1, "id": 2}}', True),  # deeper: not on a path
        ('"c": {"ID": 1, "id ": 2, "i": 3, "idd": 4}', True),
    ],
)
def test_fields_on_a_path(member: str, vouched: bool) -> None:
    value = with_extra(member)
    assert (scan1(value) is not None) == vouched
    if vouched:
        assert scan1(value) == oracle(value) == msgspec_fields(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("-0", 0),
        ("7", 7),
        ("-7", -7),
        (str(2**63 - 1), 2**63 - 1),
        (str(-(2**63)), -(2**63)),
        (str(2**63), None),  # out of int64
        (str(-(2**63) - 1), None),
        ("9" * 19, None),
        ("1" + "0" * 19, None),  # 20 digits
        ("0" * 2, None),
        ("007", None),
        ("1.0", None),
        ("1e3", None),
        ("1E3", None),
        ("-1.5", None),
        ('"5"', None),
        ("true", None),
        ("null", None),
        ("[5]", None),
        ("{}", None),
        ("- 5", None),
        ("--5", None),
    ],
)
def test_int_fields(text: str, expected: int | None) -> None:
    value = f'{{"ts": {text}, "r": {{"status": 1}}, "t": ""}}'.encode()
    got = scan1(value)
    assert (None if got is None else got[0]) == expected
    if expected is not None:
        assert oracle(value) == got == msgspec_fields(value)


def test_depth_at_and_over_the_limit() -> None:
    fields: list[Field] = [(("a",), "s")]
    for limit in (1, 2, 3, 10, 64):
        for inner in ("[]", "{}"):
            for depth in range(1, limit + 3):
                # the top-level object is depth 1; `inner` nests depth - 1 more
                nested = "1" if depth == 1 else "[" * (depth - 2) + inner + "]" * (depth - 2)
                value = f'{{"x": {nested}, "a": "v"}}'.encode()
                got = scan1(value, fields, max_depth=limit)
                assert (got is not None) == (depth <= limit), (limit, depth, inner)
                assert batch.json_depth(value) == depth
                if got is not None:
                    assert got == oracle(value, fields, max_depth=limit)


def test_depth_on_a_path_and_the_hard_limit() -> None:
    fields: list[Field] = [(("a", "b", "c"), "i")]
    value = b'{"a": {"b": {"c": 1}}}'
    assert scan1(value, fields, max_depth=3) == (1,)
    assert scan1(value, fields, max_depth=2) is None
    sc = scanner(fields, max_depth=10**9)
    assert sc.max_depth == _jsonscan.HARD_MAX_DEPTH
    deep = b'{"a": {"b": {"c": 1}}, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert scan_all(sc, fields, [deep]) == [None]  # no stack overflow either


def test_size_limit() -> None:
    fields: list[Field] = [(("a",), "s")]
    value = b'{"a": "v"}'
    assert scan1(value, fields, max_bytes=len(value)) == ("v",)
    assert scan1(value, fields, max_bytes=len(value) - 1) is None


def test_values_that_are_not_bytes() -> None:
    fields: list[Field] = [(("a",), "s")]
    good = b'{"a": "v"}'
    values = [good, bytearray(good), memoryview(good), good.decode(), None, 1, good]
    assert scan_all(scanner(fields), fields, values) == [("v",), *[None] * 5, ("v",)]
    assert scan_all(scanner(fields), fields, tuple(values[:1])) == [("v",)]
    assert scan_all(scanner(fields), fields, []) == []


def test_utf8_inside_strings() -> None:
    fields: list[Field] = [(("a",), "s")]
    for raw in [
        b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xf4\x8f\xbf\xbf", b"\xed\x9f\xbf",
        b"\xee\x80\x80", b"\xef\xbf\xbf",
    ]:
        assert scan1(b'{"a": "x' + raw + b'"}', fields) == ("x" + raw.decode(),)
        assert scan1(b'{"b": "x' + raw + b'", "a": ""}', fields) == ("",)
    for raw in [
        b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xc3", b"\xc3\x28", b"\xe0\x80\x80",
        b"\xe0\x9f\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xe2\x82", b"\xf0\x80\x80\x80",
        b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xff", b"\xfe",
        b"\xf0\x9f\x98",
    ]:
        with pytest.raises(UnicodeDecodeError):
            raw.decode()
        assert scan1(b'{"a": "x' + raw + b'"}', fields) is None, raw
        assert scan1(b'{"b": "x' + raw + b'", "a": ""}', fields) is None, raw
        assert scan1(b'{"a": "", "x' + raw + b'": 1}', fields) is None, raw
    assert scan1(b'{"a": "", "b": 1\xc3\xa9}', fields) is None  # outside strings: not JSON


@SETTINGS
@given(st.binary(max_size=12), st.integers(0, 40))
def test_utf8_agrees_with_python(raw: bytes, pad: int) -> None:
    fields: list[Field] = [(("a",), "s")]
    assume(not any(b in raw for b in b'"\\') and all(b >= 0x20 for b in raw))
    for text in (b"y" * pad + raw, raw + b"y" * pad):  # in the 16-byte blocks and after
        try:
            expected: tuple[Any, ...] | None = (text.decode(),)
        except UnicodeDecodeError:
            expected = None
        assert scan1(b'{"a": "' + text + b'"}', fields) == expected
        assert scan1(b'{"a": "", "b": "' + text + b'"}', fields) == (
            None if expected is None else ("",)
        )


def test_dash_and_fallback_kinds() -> None:
    def row(r: str, c: str) -> tuple[Any, ...] | None:
        return scan1(f'{{"ts": 1, "r": {{"status": 2{r}}}, "t": "", "c": {{{c}}}}}'.encode())

    assert row(', "name": "-"', "") == (1, 2, "", "", "", "")
    assert row(', "name": "--"', "") == (1, 2, "", "--", "", "")
    assert row(', "name": " -"', "") == (1, 2, "", " -", "", "")
    assert row("", '"id": "i", "user": "u"') == (1, 2, "", "", "i", "")
    assert row("", '"id": "", "user": "u"') == (1, 2, "", "", "u", "")
    assert row("", '"user": "u"') == (1, 2, "", "", "u", "")
    assert row("", '"user": "u", "id": "i"') == (1, 2, "", "", "i", "")
    assert row("", '"id": "i", "user": 5') is None  # checked even when not needed
    assert row("", '"id": "i", "user": null') is None


def test_str_objects_and_the_cache() -> None:
    fields: list[Field] = [(("a",), "s")]
    sc = scanner(fields)
    long = "L" * 100
    values = [f'{{"a": "{v}"}}'.encode() for v in ("svc", "svc", "", long, long, "é", "é")]
    rows = scan_all(sc, fields, values)
    assert [r[0] for r in rows if r] == ["svc", "svc", "", long, long, "é", "é"]
    ints = np.zeros((0, len(values)), np.int64)
    ok = np.zeros(len(values), np.bool_)
    (col,) = sc.scan(values, ints, ok)
    (again,) = sc.scan(values, ints, ok)
    assert col[0] is col[1] is again[0]  # one object for a repeated short ASCII value
    assert all(type(v) is str for v in col)
    # many distinct values: the bounded cache replaces entries, values stay right
    many = [f'{{"a": "v{i % 9000}"}}'.encode() for i in range(20000)]
    assert [r[0] for r in scan_all(sc, fields, many) if r] == [f"v{i % 9000}" for i in range(20000)]


def test_arguments_are_checked() -> None:
    sc = scanner([(("a",), "i"), (("b",), "s")])
    vals = [b'{"a": 1}']
    with pytest.raises(ValueError, match="ints"):
        sc.scan(vals, np.zeros((1, 2), np.int64), np.zeros(1, np.bool_))
    with pytest.raises(ValueError, match="ints"):
        sc.scan(vals, np.zeros((1, 1), np.float64), np.zeros(1, np.bool_))
    with pytest.raises(ValueError, match="ok"):
        sc.scan(vals, np.zeros((1, 1), np.int64), np.zeros(2, np.bool_))
    with pytest.raises(ValueError, match="ok"):
        sc.scan(vals, np.zeros((1, 1), np.int64), np.zeros(1, np.int64))
    with pytest.raises(BufferError):
        sc.scan(vals, b"\0" * 8, np.zeros(1, np.bool_))  # read-only
    with pytest.raises(TypeError):
        sc.scan(vals, np.zeros((1, 1), np.int64))
    with pytest.raises(TypeError):
        sc.scan(1, np.zeros((1, 1), np.int64), np.zeros(1, np.bool_))
    assert sc.n_ints == 1 and sc.n_strs == 1
    assert "Scanner(" in repr(sc)


@pytest.mark.parametrize(
    ("paths", "kinds"),
    [
        (((b"a",), (b"a",)), b"ii"),  # repeated
        (((b"a",), (b"a", b"b")), b"ii"),  # a prefix of another
        (((b"a", b"b"), (b"a",)), b"ii"),
        (((b"a",),), b"x"),  # unknown kind
        (((b"a",),), b"f"),  # a fallback needs a str field before it
        (((b"a",), (b"b",)), b"if"),
        (((b"a",),), b"ii"),  # one kind per path
        ((), b""),
        (((),), b"i"),
        ((("a",),), b"i"),  # keys are bytes
        (tuple((f"k{i}".encode(),) for i in range(17)), b"i" * 17),
    ],
)
def test_bad_paths(paths: Any, kinds: bytes) -> None:
    assert jsondecoder.NATIVE_SCANNER is not None
    with pytest.raises((ValueError, TypeError)):
        jsondecoder.NATIVE_SCANNER(paths, kinds, 64, 1000)


# -- properties -----------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["-", "", "a", "é", "\x00", '"', "\\", "\ud7ff"])
)
#: Strings that need no escape in JSON (but non-ASCII ones with ensure_ascii).
_plain = st.text(
    st.characters(codec="utf-8", min_codepoint=0x20, exclude_characters='"\\'), max_size=8
) | st.sampled_from(["-", "", "billing", "--"])
_json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    max_leaves=20,
)


@st.composite
def json_texts(draw: st.DrawFn) -> bytes:
    """A top-level object whose members often are (or contain) the needed ones."""
    members: list[tuple[str, Any]] = []
    # mostly the needed fields, of the right types
    sub = st.dictionaries(st.sampled_from(["status", "name", "id", "user", "x"]),
                          st.integers(-(2**64), 2**64) | st.text(max_size=6) | _scalars)
    typed = {
        "ts": st.integers(-(2**63), 2**63 - 1) | st.sampled_from([0, -1, 2**63 - 1, -(2**63)]),
        "r": st.fixed_dictionaries({"status": st.integers(0, 999)}, optional={"name": _plain}),
        "svc": _plain,
        "c": st.fixed_dictionaries({}, optional={"id": _plain, "user": _plain | _scalars}),
        "t": _plain,
    }
    for key, strategy in typed.items():  # (hypothesis favours small integers: 0 is common)
        if draw(st.integers(0, 9)) < 9:
            wrong = draw(st.integers(0, 7)) == 7
            members.append((key, draw(sub | _json_values if wrong else strategy)))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(["x", "status", "name", *KEYS]))
        if key == "r":
            value = draw(st.dictionaries(st.sampled_from(["status", "name", "x"]), _scalars)
                         | _json_values)
        elif key == "c":
            value = draw(st.dictionaries(st.sampled_from(["id", "user", "x"]), _scalars)
                         | _json_values)
        else:
            value = draw(st.integers(-(2**64), 2**64) | _json_values)
        members.append((key, value))
    members = draw(st.permutations(members))
    indent = draw(st.sampled_from([None, None, 0, 1]))
    ascii_only = draw(st.integers(0, 3)) == 0
    parts = [
        json.dumps(k, ensure_ascii=ascii_only) + ":" + json.dumps(v, ensure_ascii=ascii_only,
                                                                  indent=indent)
        for k, v in members
    ]
    return ("{" + ",".join(parts) + "}").encode()


@st.composite
def mutated(draw: st.DrawFn, value: bytes) -> bytes:
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(value)))
        kind = draw(st.integers(0, 4))
        if kind == 0:
            value = value[:at] + value[at + 1 :]
        elif kind == 1:
            byte = draw(st.sampled_from([*b'{}[]",:\\ -.0eE\x00\x1f\x80\xc3\xffu']))
            value = value[:at] + bytes([byte]) + value[at:]
        elif kind == 2:
            value = value[:at]
        elif kind == 3:
            piece = draw(st.sampled_from([b'"\\ud800"', b'"\\u00e9"', b"1e400", b"-0", b"01",
                                          b'"ts":1,', b'"r":{"status":2},', b"[[[[", b"]]"]))
            value = value[:at] + piece + value[at:]
        else:
            end = draw(st.integers(at, len(value)))
            value = value[:at] + value[at:end] * 2 + value[end:]
    return value


@SETTINGS
@given(st.data())
def test_whenever_it_vouches_json_and_msgspec_agree(data: st.DataObject) -> None:
    value = data.draw(json_texts())
    if data.draw(st.booleans()):
        value = data.draw(mutated(value))
    got = scan1(value)
    if got is not None:
        assert oracle(value) == got
        assert msgspec_fields(value) == got
        assert batch.precheck(value, 10**6, 64) is None


@SETTINGS
@given(json_texts())
def test_it_vouches_for_plain_records(value: bytes) -> None:
    expected = oracle(value)
    plain = b"\\" not in value  # escapes are what it may refuse beyond the oracle
    if plain or expected is None:
        assert scan1(value) == expected


@SETTINGS
@given(st.binary(max_size=60))
def test_random_bytes(value: bytes) -> None:
    got = scan1(value, [(("a",), "s")])
    if got is not None:
        assert oracle(value, [(("a",), "s")]) == got


@SETTINGS
@given(st.lists(st.sampled_from([GOOD, b"{}", b"x", GOOD[:20], with_extra('"x": [1, 2]')]),
                max_size=40))
def test_a_batch_is_its_records(values: list[bytes]) -> None:
    sc = scanner()
    assert scan_all(sc, FIELDS, values) == [scan1(v) for v in values]


# -- Python objects around the parser -------------------------------------------


class _ClearsOnCollect:
    """Garbage in a reference cycle whose finalizer empties ``target`` (a list of records):
    it runs at the first garbage collection after it is made."""

    def __init__(self, target: list[bytes], ran: list[bool]) -> None:
        self.target, self.ran, self.cycle = target, ran, self

    def __del__(self) -> None:
        self.target.clear()
        self.ran.append(True)


@pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="from 3.12 the collector runs between bytecodes only"
)
def test_a_finalizer_that_empties_the_values_mid_scan() -> None:
    # scan() allocates its result lists after it has read the values: on 3.11 that can
    # run the garbage collector, and a finalizer can then free the list's items. The
    # scanner must hold its own references (it read freed memory: a crash, or
    # heap-use-after-free under AddressSanitizer). (From 3.12 the __buffer__ case
    # below is the way in.)
    sc = scanner([(("a",), "s")])
    n = 2000  # an item array well beyond the small-object allocator
    values = [f'{{"a": "v{i}"}}'.encode() for i in range(n)]
    ints, ok = np.zeros((0, n), np.int64), np.zeros(n, np.bool_)
    ran: list[bool] = []
    threshold = gc.get_threshold()
    gc.collect()
    gc.disable()
    try:
        _ClearsOnCollect(values, ran)
        gc.set_threshold(1)  # the next allocation of a tracked object collects
        gc.enable()
        (strs,) = sc.scan(values, ints, ok)  # (nothing else allocates before it)
    finally:
        gc.set_threshold(*threshold)
        gc.enable()
    assert ran and values == []  # the finalizer ran during the scan
    assert ok.all() and strs == [f"v{i}" for i in range(n)]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="__buffer__ is Python 3.12+")
def test_a_buffer_export_that_empties_the_values() -> None:
    # PyObject_GetBuffer runs Python code (__buffer__) after the values were read.
    fields: list[Field] = [(("a",), "i"), (("b",), "s")]
    sc = scanner(fields)
    values = [f'{{"a": {i}, "b": "v{i}"}}'.encode() for i in range(2000)]
    ints = np.zeros((1, len(values)), np.int64)

    class Clearing:
        def __buffer__(self, flags: int) -> memoryview:
            values.clear()
            return memoryview(ints).cast("B").cast("q")

    ok = np.zeros(2000, np.bool_)
    strs = sc.scan(values, Clearing(), ok)
    assert values == [] and ok.all()
    assert ints[0].tolist() == list(range(2000)) and strs[0] == [f"v{i}" for i in range(2000)]


@pytest.mark.parametrize(
    "bad_paths",
    [
        ("x",),  # fails after the field tables were started, before any key is stored
        ((b"a",), (b"a",)),  # fails after keys were stored
        ((b"a",), "b"),
    ],
)
def test_init_again_after_a_failed_init(bad_paths: Any) -> None:
    assert jsondecoder.NATIVE_SCANNER is not None
    sc = jsondecoder.NATIVE_SCANNER.__new__(jsondecoder.NATIVE_SCANNER)
    with pytest.raises(Exception, match="Scanner is not initialised"):
        sc.scan([], np.zeros((0, 0), np.int64), np.zeros(0, np.bool_))
    kinds = b"s" * len(bad_paths)
    with pytest.raises((TypeError, ValueError)):
        sc.__init__(bad_paths, kinds, 8, 100)
    sc.__init__(((b"a",),), b"s", 8, 100)  # a failed init leaves nothing behind
    assert (sc.n_ints, sc.n_strs, sc.max_depth) == (0, 1, 8)
    fields: list[Field] = [(("a",), "s")]
    assert scan_all(sc, fields, [b'{"a": "v"}', b'{"b": 1}', b"{"]) == [("v",), ("",), None]
    with pytest.raises(RuntimeError, match="already initialised"):
        sc.__init__(((b"a",),), b"s", 8, 100)


# -- epoch seconds ("m") --------------------------------------------------------------

SECONDS: list[Field] = [(("ts",), "m"), (("t",), "S")]
_SECONDS_LITERAL = re.compile(r"(0|[1-9][0-9]{0,9})(?:\.([0-9]+))?")


def seconds_literal_ms(literal: str) -> int | None:
    """What kind "m" reads from a number literal, by its documented rule: the
    milliseconds rounded to the nearest, or None (the record is not vouched for)."""
    m = _SECONDS_LITERAL.fullmatch(literal)
    if m is None:
        return None
    below = (m[2] or "").ljust(5, "0")[:5]
    hundredths = int(below[3:])  # of a millisecond: within 0.01 ms of a half, refused
    if hundredths in (49, 50):
        return None
    return int(m[1]) * 1000 + int(below[:3]) + (hundredths >= 50)


_whole = st.one_of(st.integers(0, 9_999_999_999), st.integers(10**10, 10**13 - 1),
                   st.just(1_796_607_789)).map(str)
_fraction = st.one_of(
    st.just(""),
    st.text("0123456789", min_size=1, max_size=12).map("." .__add__),
    # at the edge of the rounding: a millisecond, then 49 or 50 or 51 hundredths
    st.tuples(st.integers(0, 999), st.sampled_from(["49", "50", "51", "4999", "5000"]),
              st.text("0123456789", max_size=6)).map(lambda t: f".{t[0]:03d}{t[1]}{t[2]}"),
)
_literals = st.one_of(
    st.tuples(st.sampled_from(["", "-"]), _whole, _fraction,
              st.sampled_from(["", "", "e0", "E+2", "e-3"])).map("".join),
    st.sampled_from(["01", "1.", ".5", "1.e3", "+1", "00.5", "1796607789.1.2"]),
)


@SETTINGS
@given(literal=_literals)
def test_epoch_seconds_read_as_the_full_decoder_rounds_them(literal: str) -> None:
    """Kind "m" vouches for a number literal exactly where its rule says, and then
    gives the milliseconds the full decoder gives (``epoch_to_ms``: a double, rounded)."""
    value = f'{{"ts": {literal}, "t": "x"}}'.encode()
    got = scan_all(scanner(SECONDS), SECONDS, [value])[0]
    want = seconds_literal_ms(literal)
    assert got == (None if want is None else (want, "x"))
    if got is not None:
        number = json.loads(literal)
        assert round(number * 1000) == got[0]
        if timestamps.MIN_TS_MS <= got[0] < timestamps.END_TS_MS:  # else both refuse it
            assert timestamps.epoch_to_ms(number, "s") == got[0]


def test_epoch_seconds_as_caddy_writes_them() -> None:
    values = [b'{"ts": 1796607789.3989055, "t": "x"}', b'{"ts": 1796607789, "t": "x"}',
              b'{"ts": 1796607789.0004951, "t": "x"}', b'{"ts": 1.7966e9, "t": "x"}',
              b'{"ts": "1796607789.5", "t": "x"}']
    assert scan_all(scanner(SECONDS), SECONDS, values) == [
        (1_796_607_789_399, "x"), (1_796_607_789_000, "x"), None, None, None]
    with pytest.raises(ValueError, match="kind f must follow a str field"):
        scanner([(("ts",), "m"), (("t",), "f")])

