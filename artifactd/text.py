"""Showing third-party text (advisory summaries, license strings) safely on a terminal or a page.

Its own small module so that plugins can import it at start without loading the policy use cases.
"""
from __future__ import annotations

import html
import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def escape_text(text: str | None, limit: int = 300) -> str:
    """Terminal/HTML-safe one-line text: markup escaped, control characters shown as ``\\xNN``.

    Advisory summaries and license strings come from third parties (OSV ``details`` is Markdown):
    never print them raw. JSON output keeps the raw text.
    """
    if not text:
        return ""
    one_line = " ".join(text.split())
    escaped = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
                           one_line)
    escaped = html.escape(escaped, quote=False)
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"
