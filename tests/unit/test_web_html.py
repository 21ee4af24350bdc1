"""The web interface's HTML builder: escaping is the default, markup only comes from the builder."""
from __future__ import annotations

import pytest

from artifactd.web import pages
from artifactd.web.html import Safe, a, el, esc, render, size, url
from tests.webutil import check_html


def test_text_and_attributes_are_escaped() -> None:
    out = el("p", {"title": '"><script>x</script>', "class": "c"}, "<b>&'\"", Safe("<i>ok</i>"), 3, None)
    assert out == ('<p title="&quot;&gt;&lt;script&gt;x&lt;/script&gt;" class="c">'
                   "&lt;b&gt;&amp;&#x27;&quot;<i>ok</i>3</p>")
    assert esc(esc("<")) == "&lt;"  # Safe is not escaped twice
    assert render(["<", ["<"]]) == "&lt;&lt;"
    assert el("input", {"disabled": True, "value": None, "x_y": 1}) == '<input disabled x-y="1">'


@pytest.mark.parametrize("bad", ["script onload", "a\"", "<x>", ""])
def test_tag_and_attribute_names_are_checked(bad: str) -> None:
    with pytest.raises(ValueError):
        el(bad)
    with pytest.raises(ValueError):
        el("p", {bad: "v"})


def test_urls_quote_every_segment() -> None:
    assert url() == "/ui/"
    assert url("repo", "a b", "project", "x/y") == "/ui/repo/a%20b/project/x%2Fy/"
    assert url("repo", "r", query={"q": "<&>", "page": 2, "empty": ""}) == "/ui/repo/r/?q=%3C%26%3E&page=2"
    assert a("/ui/?a=1&b=2", "x") == '<a href="/ui/?a=1&amp;b=2">x</a>'


def test_only_http_links_become_hrefs() -> None:
    assert pages.ext_link("javascript:alert(1)") == "javascript:alert(1)"
    assert pages.ext_link(" JaVaScRiPt:alert(1)") == " JaVaScRiPt:alert(1)"
    assert pages.ext_link("data:text/html,x") == "data:text/html,x"
    assert pages.ext_link("https://h.example/a?b=1&c=<").startswith('<a href="https://h.example/a?b=1&amp;c=&lt;"')


def test_upstream_health_cell_renders_a_proxy_status() -> None:
    cell = render(pages.upstream_cell({"healthy": False, "last_error": "<b>timeout</b>", "last_success": "2024-01-01"}))
    assert "failing" in cell and "&lt;b&gt;timeout&lt;/b&gt;" in cell and "2024-01-01" in cell
    assert "healthy" in render(pages.upstream_cell({"ok": True}))
    assert render(pages.upstream_cell(None)) == "-"


def test_layout_is_valid_html_with_a_csrf_logout_form() -> None:
    body = pages.layout("T <x>", pages.message("m"), user="u<", csrf="tok", crumbs=[("Home", "/ui/"), ("<here>", "")])
    text = body.decode()
    checked = check_html(text)
    assert not checked.errors, checked.errors
    assert 'name="csrf" value="tok"' in text and "u&lt;" in text and "T &lt;x&gt;" in text


def test_sizes() -> None:
    assert size(0) == "0 B" and size(1536) == "1.5 KiB" and size(None) == "-"
