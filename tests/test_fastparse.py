"""The fast header parse must build exactly what http.client.parse_headers builds."""
from __future__ import annotations

import http.client
import io

import pytest

from artifactd.http.fastparse import Headers, parse_headers

CASES = [
    b"\r\n",
    b"Host: x\r\n\r\n",
    b"Host: 127.0.0.1:8080\r\nAccept: application/vnd.pypi.simple.v1+json, text/html;q=0.01\r\n"
    b"User-Agent: uv/0.5\r\nAccept-Encoding: gzip\r\nConnection: keep-alive\r\n\r\n",
    b"A:   spaced value   \r\nB:\tx\r\nC:\r\nd-e_f: 1\r\n\r\n",
    b"Dup: 1\r\nDup: 2\r\n\r\n",
    b"LF-only: yes\nOther: no\n\n",
    b"Folded: one\r\n two\r\n\tthree\r\nNext: x\r\n\r\n",
    b"No colon here\r\nX: y\r\n\r\n",
    b"From someone\r\nX: y\r\n\r\n",
    b"From: someone\r\n\r\n",
    b": empty name\r\n\r\n",
    b"Bad Name: v\r\n\r\n",
    b"Latin: caf\xe9\r\n\r\n",
    b"Mid: a\rb\r\n\r\n",
    b"Truncated: no blank line\r\n",
    b"Authorization: Basic X190b2tlbl9fOnNlY3JldA==\r\nContent-Length: 10\r\n\r\nbody",
    # Edges of the one-regex path over the whole block:
    b"Double-CR: x\r\r\n\r\n",
    b"Mixed: 1\nCRLF: 2\r\nLF: 3\n\r\n",
    b"Empty:\nAlso-Empty: \r\n\n",
    b"Tab\tName: x\r\n\r\n",
    b"Colons: a:b:c\r\nUrl: http://h:1/p\r\n\r\n",
    b"Trailing: tab\t\r\nSpace: s \r\n\r\n",
]


@pytest.mark.parametrize("raw", CASES)
def test_same_message_as_stdlib(raw: bytes) -> None:
    a = http.client.parse_headers(io.BytesIO(raw), _class=Headers)  # the stdlib's parse, no index
    b = parse_headers(io.BytesIO(raw))
    assert type(a) is type(b)
    assert a.items() == b.items()
    assert a._headers == b._headers
    assert a.get_payload() == b.get_payload()
    assert a.get_unixfrom() == b.get_unixfrom()
    assert len(a.defects) == len(b.defects)
    assert str(a) == str(b)
    for name in ("host", "accept", "folded", "x", "content-length", "dup", "HOST", "Dup", "missing"):
        assert a.get(name) == b.get(name)
        assert a.get(name, "default") == b.get(name, "default")
        assert a.get_all(name) == b.get_all(name)
        if a.get(name) is not None:
            assert a[name] == b[name]


def test_index_follows_changes() -> None:
    h = parse_headers(io.BytesIO(b"Accept: a\r\nDup: 1\r\nDup: 2\r\n\r\n"))
    assert isinstance(h, Headers) and h["dup"] == "1"
    del h["Dup"]
    assert h.get("dup") is None
    h["Dup"] = "3"
    assert h.get("dup") == "3"
    h.replace_header("Accept", "b")
    assert h["accept"] == "b"
    h.add_header("X-New", "v")
    assert h.get("x-new") == "v" and http.client.HTTPMessage.get(h, "x-new") == "v"


def test_limits() -> None:
    with pytest.raises(http.client.LineTooLong):
        parse_headers(io.BytesIO(b"X: " + b"a" * 70000 + b"\r\n\r\n"))
    with pytest.raises(http.client.HTTPException):
        parse_headers(io.BytesIO(b"X: y\r\n" * 101 + b"\r\n"))
