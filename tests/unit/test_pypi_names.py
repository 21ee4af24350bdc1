"""Project names and distribution filenames (STANDARDS R37; RELIABILITY §3 #6, #15-#20, #26)."""
from __future__ import annotations

import pytest
from packaging.version import Version

from artifactd.errors import BadRequest
from artifactd.formats.pypi.names import (
    DistFilename,
    canonical_version,
    filename_bytes_ok,
    normalize,
    parse_filename,
    safe_repr,
    validate_project_name,
    wheel_build_and_tags,
)


def reject_filename(filename: str, match: str) -> BadRequest:
    """parse_filename raises exactly BadRequest (HTTP 400) with a one-line message."""
    with pytest.raises(BadRequest, match=match) as info:
        parse_filename(filename)
    exc = info.value
    assert type(exc) is BadRequest
    assert exc.http_status == 400
    assert "\n" not in exc.message and "\r" not in exc.message and "\x00" not in exc.message
    return exc


# --- normalize / validate_project_name ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Foo", "foo"), ("foo_bar", "foo-bar"), ("Foo.-_Bar", "foo-bar"), ("a--b__c..d", "a-b-c-d"), ("x", "x")],
)
def test_normalize(name: str, expected: str) -> None:
    assert normalize(name) == expected


@pytest.mark.parametrize("name", ["a", "A1", "foo-bar", "foo_bar", "foo.bar", "Zope2", "x" * 200])
def test_validate_project_name_accepts(name: str) -> None:
    assert validate_project_name(name) == name


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("", "empty"),
        ("x" * 201, "longer than 200"),
        ("<script>alert(1)</script>", "invalid project name"),
        ("foo\r\nSet-Cookie: x", "invalid project name"),
        ("foo\n", "invalid project name"),  # "$" alone would accept a trailing newline
        ("ev/il", "invalid project name"),
        ("foo bar", "invalid project name"),
        ("-foo", "invalid project name"),
        ("foo.", "invalid project name"),
        ("fo\u212a", "invalid project name"),  # KELVIN SIGN matches "k" under IGNORECASE without re.ASCII
        ("caf\u00e9", "invalid project name"),
    ],
)
def test_validate_project_name_rejects(name: str, match: str) -> None:
    with pytest.raises(BadRequest, match=match) as info:
        validate_project_name(name)
    assert type(info.value) is BadRequest
    assert "\n" not in info.value.message and "\r" not in info.value.message


def test_safe_repr_is_ascii_single_line_and_truncated() -> None:
    shown = safe_repr("a\r\n\x00\u00e9" + "x" * 100, limit=10)
    assert shown.isascii() and "\n" not in shown and "\r" not in shown
    assert shown.endswith("...")


# --- parse_filename: good names ------------------------------------------------------------


def test_parse_wheel_filename() -> None:
    dist = parse_filename("Foo_Bar-1.0.post1-py2.py3-none-any.whl")
    assert dist == DistFilename(
        filename="Foo_Bar-1.0.post1-py2.py3-none-any.whl",
        name="Foo_Bar",
        normalized="foo-bar",
        version=Version("1.0.post1"),
        kind="wheel",
        python_tag="py2.py3",
        packagetype="bdist_wheel",
    )


def test_parse_wheel_filename_with_build_tag() -> None:
    dist = parse_filename("numpy-2.1.0-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    assert (dist.normalized, dist.version, dist.python_tag) == ("numpy", Version("2.1.0"), "cp311")


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_parse_sdist_filename(suffix: str) -> None:
    dist = parse_filename(f"Foo-Bar-1!2.0rc1+local.7{suffix}")
    assert dist.name == "Foo-Bar"
    assert dist.normalized == "foo-bar"
    assert dist.version == Version("1!2.0rc1+local.7")
    assert (dist.kind, dist.python_tag, dist.packagetype) == ("sdist", "source", "sdist")


# --- parse_filename: bad names (RELIABILITY §3) ----------------------------------------------


@pytest.mark.parametrize(
    ("filename", "match"),
    [
        ("../x.whl", "path separator"),  # #15
        ("../x-1.0.tar.gz", "path separator"),
        ("%2e%2e/x-1.0.tar.gz", "'%'"),  # #16
        ("%2e%2e%2fx-1.0.tar.gz", "'%'"),
        ("%252e%252e%252fx-1.0.tar.gz", "'%'"),  # double-encoded
        ("/etc/x-1.0.tar.gz", "path separator"),  # #17
        ("C:\\x-1.0.tar.gz", "drive letter"),
        ("C:x-1.0.tar.gz", "drive letter"),
        ("a\\..\\b-1.0.tar.gz", "path separator"),  # #18
        ("ev/il-1.0.tar.gz", "path separator"),  # packaging alone returns the name "ev/il"
        ("x\x00-1.0.tar.gz", "NUL"),  # #19
        ("x-1.0.tar.gz\x00.whl", "NUL"),
        ("<script>-1.0.tar.gz", "disallowed character '<'"),  # #26
        ("x\r\n-1.0.tar.gz", "control or non-printable"),
        ("x-1.0.tar.gz\r\nSet-Cookie: a", "control or non-printable"),
        ("x\t-1.0.tar.gz", "control or non-printable"),
        ("x\u2028-1.0.tar.gz", "control or non-printable"),  # Unicode line separator
        ("foo- 1.0.tar.gz", "disallowed character ' '"),  # Version() would strip the space
        ("fo\u00e9-1.0.tar.gz", "disallowed character"),
        (".hidden-1.0.tar.gz", "starts with '.'"),
        ("..", "starts with '.'"),
        ("a..b-1.0.tar.gz", "'..'"),
        ("", "empty"),
        ("x" * 250 + "-1.0.tar.gz", "longer than 255"),
    ],
)
def test_traversal_and_injection_filenames_are_rejected(filename: str, match: str) -> None:
    reject_filename(filename, match)


def test_message_escapes_control_characters() -> None:
    exc = reject_filename("evil\r\n-1.0.tar.gz", "control")
    assert "\\r\\n" in exc.message


@pytest.mark.parametrize(
    ("filename", "match"),
    [
        ("foo-latest.tar.gz", r"'latest' in the filename is not a valid PEP 440 version"),  # #6
        ("foo-latest-py3-none-any.whl", "'latest' in the filename is not a valid PEP 440 version"),
        ("foo.tar.gz", "expected name-version.tar.gz"),
        ("-1.0.zip", "expected name-version.zip"),
        ("foo_-1.0.tar.gz", "invalid project name"),
        ("foo-1.0.whl", "expected name-version"),
        ("foo-1.0-py3-none-any-x-y.whl", "expected name-version"),
        ("foo__bar-1.0-py3-none-any.whl", "invalid wheel filename"),
        ("foo-1.0-x1-py3-none-any.whl", "malformed build or compatibility tag"),
        ("foo-1.0-py3-none-any!.whl", "malformed build or compatibility tag"),
        ("foo-1.0-py3-none-.whl", "malformed build or compatibility tag"),
    ],
)
def test_malformed_distribution_filenames_are_rejected(filename: str, match: str) -> None:
    reject_filename(filename, match)


# artifactd checks packaging's filename rules itself (packaging.utils imports packaging.tags,
# sysconfig and the manylinux probes); these hold the two side by side.
_FILENAMES = [
    "foo-1.0-py3-none-any.whl", "Foo_Bar-2.0.0-py2.py3-none-any.whl", "foo-1.0-1-py3-none-any.whl",
    "foo-1.0-12abc-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "foo-1!2.0.0.post1.dev3+local.7-CP311-ABI3-Win_AMD64.whl", "foo-1.0.0rc1-py3-none-any.whl",
    "foo-1.0-py3.-none-any.whl", "foo-1.0-.py3-none-any.whl", "foo-1.0-py3-none.-any.whl",
    "foo-1.0-3py-none-any.whl", "foo-1.0-py3.4py-none-any.whl", "foo__bar-1.0-py3-none-any.whl",
    "foo-1.0-x1-py3-none-any.whl", "foo-1.0-1_2-py3-none-any.whl", "foo-1.0.0.tar.gz", "foo-1.0.zip",
    "foo_bar-0.0.0.tar.gz", "foo.bar-2.0a1.tar.gz", "foo-latest.tar.gz", "foo-1.0-py3-none-any-x.whl",
]


@pytest.mark.parametrize("filename", _FILENAMES)
def test_filenames_follow_packagings_rules(filename: str) -> None:
    """Whatever packaging's parsers refuse, artifactd refuses; for what both accept, the version
    and the dist key parts (PEP 625 version, build tag, expanded tags) are packaging's."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        canonicalize_version,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    try:
        if filename.endswith(".whl"):
            _, version, build, tags = parse_wheel_filename(filename)
        else:
            _, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        with pytest.raises(BadRequest):
            parse_filename(filename)
        return
    try:
        dist = parse_filename(filename)
    except BadRequest:
        return  # stricter than packaging (PEP 508 names, build tags of [A-Za-z0-9_]): allowed
    assert dist.version == version
    assert canonical_version(dist.version) == canonicalize_version(version, strip_trailing_zero=True)
    if dist.kind == "wheel":
        assert wheel_build_and_tags(dist) == (f"{build}", sorted(str(t) for t in tags))


@pytest.mark.parametrize("text", ["1", "1.0", "1.0.0", "0.0", "0", "1.0.0.0.1.0", "2!1.0.0", "1.0.0rc1",
                                  "1.0.0.post2", "1.0.0.dev1", "1.0.0+local.0", "1.10.0", "10.0.0a0",
                                  "1!0.0.0.post0.dev0+0"])
def test_canonical_version_is_packagings(text: str) -> None:
    from packaging.utils import canonicalize_version

    assert canonical_version(Version(text)) == canonicalize_version(text, strip_trailing_zero=True)


@pytest.mark.parametrize(
    "filename",
    ["foo-1.0.exe", "foo-1.0.egg", "foo-1.0.tar.bz2", "foo-1.0.tgz", "foo-1.0-py3-none-any.WHL", "foo-1.0"],
)
def test_other_extensions_are_rejected(filename: str) -> None:
    reject_filename(filename, r"unsupported file type .*expected a \.whl, \.tar\.gz or \.zip")


# --- filename_bytes_ok --------------------------------------------------------------------


def test_filename_bytes_ok_decodes_utf8() -> None:
    assert filename_bytes_ok(b"foo-1.0.tar.gz") == "foo-1.0.tar.gz"
    assert filename_bytes_ok("caf\u00e9".encode()) == "caf\u00e9"


@pytest.mark.parametrize("raw", [b"foo-\xff1.0.tar.gz", b"\xc3", b"\xed\xa0\x80-1.0.tar.gz"])
def test_filename_bytes_ok_rejects_invalid_utf8(raw: bytes) -> None:  # #20
    with pytest.raises(BadRequest, match="not valid UTF-8") as info:
        filename_bytes_ok(raw)
    assert type(info.value) is BadRequest
