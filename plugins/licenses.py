"""License policy: find a distribution's SPDX expression and judge it against allow/deny lists.

Pure policy logic for the built-in *license* plugin (DESIGN.md "Plugins", RELIABILITY.md §5).

* :func:`license_expression_from` picks the expression from core metadata, in order:
  ``License-Expression`` (PEP 639), the legacy ``License`` field, then ``License ::``
  classifiers; everything is canonicalized with :mod:`packaging.licenses`.
* :func:`parse_license_expression` turns an expression into a small tree (``AND`` binds tighter
  than ``OR``; parentheses; ``WITH`` exceptions; ``+``; ``LicenseRef-*``).
* :func:`evaluate` / :class:`LicensePolicy` decide ``allow``/``deny``/``review``: ``OR`` passes if
  any branch passes (the verdict names the chosen branch), ``AND`` needs every term, deny beats
  allow, and anything unknown is ``review`` (or what the ``unknown`` policy says), never
  silently allowed.

Text returned here (reasons, expressions) is raw; escape it when rendering.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

__all__ = [
    "CLASSIFIER_TO_SPDX",
    "LEGACY_LICENSE_ALIASES",
    "Decision",
    "LicenseAnd",
    "LicenseExpressionError",
    "LicenseNode",
    "LicenseOr",
    "LicensePolicy",
    "LicenseSource",
    "LicenseTerm",
    "LicenseVerdict",
    "UnknownPolicy",
    "canonical_expression",
    "classifiers_to_spdx",
    "evaluate",
    "legacy_license_to_spdx",
    "license_expression_from",
    "parse_license_expression",
]

Decision: TypeAlias = Literal["allow", "deny", "review"]
UnknownPolicy: TypeAlias = Literal["review", "allow", "block"]
LicenseSource: TypeAlias = Literal["License-Expression", "License", "classifiers", "none"]

#: A legacy ``License`` value longer than this (or with several lines) is treated as a license
#: text: only its first line is tried.
MAX_LEGACY_NAME_LENGTH: Final[int] = 200


class LicenseExpressionError(ValueError):
    """An SPDX expression (or an allow/deny entry) that cannot be parsed."""


# --------------------------------------------------------------------------------------------
# Tables

#: ``License ::`` trove classifier -> SPDX id. ``None`` marks classifiers that name a family
#: of licenses (several versions or variants), which cannot be mapped honestly.
CLASSIFIER_TO_SPDX: Final[Mapping[str, str | None]] = {
    "License :: Aladdin Free Public License (AFPL)": "Aladdin",
    "License :: CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
    "License :: CeCILL-B Free Software License Agreement (CECILL-B)": "CECILL-B",
    "License :: CeCILL-C Free Software License Agreement (CECILL-C)": "CECILL-C",
    "License :: Eiffel Forum License (EFL)": None,  # EFL-1.0 or EFL-2.0
    "License :: Freely Distributable": None,
    "License :: Netscape Public License (NPL)": None,  # NPL-1.0 or NPL-1.1
    "License :: Nokia Open Source License (NOKOS)": "Nokia",
    "License :: OSI Approved": None,
    "License :: OSI Approved :: Academic Free License (AFL)": None,  # AFL-1.1 ... AFL-3.0
    # Strictly Apache-1.0/1.1/2.0; in practice (and per the project's policy) Apache-2.0.
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: Apple Public Source License": None,  # APSL-1.0 ... 2.0
    "License :: OSI Approved :: Artistic License": None,  # Artistic-1.0 or 2.0
    "License :: OSI Approved :: Attribution Assurance License": "AAL",
    "License :: OSI Approved :: BSD License": None,  # 0BSD, 2-, 3-, 4-clause...
    "License :: OSI Approved :: Blue Oak Model License (BlueOak-1.0.0)": "BlueOak-1.0.0",
    "License :: OSI Approved :: Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "License :: OSI Approved :: CEA CNRS Inria Logiciel Libre License, version 2.1 (CeCILL-2.1)": "CECILL-2.1",
    "License :: OSI Approved :: CMU License (MIT-CMU)": "MIT-CMU",
    "License :: OSI Approved :: Common Development and Distribution License 1.0 (CDDL-1.0)": "CDDL-1.0",
    "License :: OSI Approved :: Common Public License": "CPL-1.0",
    "License :: OSI Approved :: Eclipse Public License 1.0 (EPL-1.0)": "EPL-1.0",
    "License :: OSI Approved :: Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "License :: OSI Approved :: Educational Community License, Version 2.0 (ECL-2.0)": "ECL-2.0",
    "License :: OSI Approved :: Eiffel Forum License": None,
    "License :: OSI Approved :: European Union Public Licence 1.0 (EUPL 1.0)": "EUPL-1.0",
    "License :: OSI Approved :: European Union Public Licence 1.1 (EUPL 1.1)": "EUPL-1.1",
    "License :: OSI Approved :: European Union Public Licence 1.2 (EUPL 1.2)": "EUPL-1.2",
    "License :: OSI Approved :: GNU Affero General Public License v3": "AGPL-3.0-only",
    "License :: OSI Approved :: GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "License :: OSI Approved :: GNU Free Documentation License (FDL)": None,  # GFDL-1.1/1.2/1.3
    "License :: OSI Approved :: GNU General Public License (GPL)": None,  # no version
    "License :: OSI Approved :: GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "License :: OSI Approved :: GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "License :: OSI Approved :: GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "License :: OSI Approved :: GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "License :: OSI Approved :: GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "License :: OSI Approved :: GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "License :: OSI Approved :: GNU Library or Lesser General Public License (LGPL)": None,
    "License :: OSI Approved :: Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "License :: OSI Approved :: IBM Public License": "IPL-1.0",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: MIT No Attribution License (MIT-0)": "MIT-0",
    "License :: OSI Approved :: MirOS License (MirOS)": "MirOS",
    "License :: OSI Approved :: Motosoto License": "Motosoto",
    "License :: OSI Approved :: Mozilla Public License 1.0 (MPL)": "MPL-1.0",
    "License :: OSI Approved :: Mozilla Public License 1.1 (MPL 1.1)": "MPL-1.1",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: Mulan Permissive Software License v2 (MulanPSL-2.0)": "MulanPSL-2.0",
    "License :: OSI Approved :: NASA Open Source Agreement v1.3 (NASA-1.3)": "NASA-1.3",
    "License :: OSI Approved :: Nethack General Public License": "NGPL",
    "License :: OSI Approved :: Nokia Open Source License": "Nokia",
    "License :: OSI Approved :: Open Group Test Suite License": "OGTSL",
    "License :: OSI Approved :: Open Software License 3.0 (OSL-3.0)": "OSL-3.0",
    "License :: OSI Approved :: PostgreSQL License": "PostgreSQL",
    "License :: OSI Approved :: Python License (CNRI Python License)": "CNRI-Python",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "License :: OSI Approved :: Qt Public License (QPL)": "QPL-1.0",
    "License :: OSI Approved :: Ricoh Source Code Public License": "RSCPL",
    "License :: OSI Approved :: SIL Open Font License 1.1 (OFL-1.1)": "OFL-1.1",
    "License :: OSI Approved :: Sleepycat License": "Sleepycat",
    "License :: OSI Approved :: Sun Public License": "SPL-1.0",
    "License :: OSI Approved :: The Unlicense (Unlicense)": "Unlicense",
    "License :: OSI Approved :: Universal Permissive License (UPL)": "UPL-1.0",
    "License :: OSI Approved :: University of Illinois/NCSA Open Source License": "NCSA",
    "License :: OSI Approved :: Vovida Software License 1.0": "VSL-1.0",
    "License :: OSI Approved :: W3C License": "W3C",
    "License :: OSI Approved :: Zero-Clause BSD (0BSD)": "0BSD",
    "License :: OSI Approved :: Zope Public License": None,  # ZPL-1.1, 2.0, 2.1
    "License :: OSI Approved :: zlib/libpng License": "Zlib",
    "License :: Other/Proprietary License": None,
    "License :: Public Domain": None,
    "License :: Repoze Public License": None,  # not on the SPDX list
}


def _alias_key(text: str) -> str:
    """Normalise a license name for alias lookup: casefold, "licence" -> "license",
    punctuation other than ``.`` and ``+`` -> spaces, collapsed, leading "the " dropped."""
    key = text.casefold().replace("licence", "license")
    key = re.sub(r"[^0-9a-z.+]+", " ", key).strip(" .")
    return key.removeprefix("the ")


_RAW_LEGACY_ALIASES: Final[dict[str, str | None]] = {
    # "Not a license" markers and deliberately ambiguous names map to None.
    "UNKNOWN": None,
    "None": None,
    "N/A": None,
    "TBD": None,
    "Other": None,
    "Proprietary": None,
    "Commercial": None,
    "Custom": None,
    "All rights reserved": None,
    "Public Domain": None,
    "Dual License": None,
    "See LICENSE": None,
    "See LICENSE file": None,
    "BSD": None,
    "BSD License": None,
    "BSD-like": None,
    "BSD style": None,
    "GPL": None,
    "GNU GPL": None,
    "GNU General Public License": None,
    "LGPL": None,
    "GNU LGPL": None,
    "GNU Lesser General Public License": None,
    "AGPL": None,
    "Apache": None,
    "Apache License": None,
    "Artistic": None,
    "Artistic License": None,
    "Python": None,
    "ZPL": None,
    # MIT
    "MIT License": "MIT",
    "MIT License (MIT)": "MIT",
    "MIT license MIT": "MIT",
    "Expat": "MIT",
    "Expat License": "MIT",
    "MIT-0 License": "MIT-0",
    # Apache
    "Apache 2": "Apache-2.0",
    "Apache 2.0": "Apache-2.0",
    "Apache v2": "Apache-2.0",
    "Apache v2.0": "Apache-2.0",
    "Apache2": "Apache-2.0",
    "Apache 2.0 License": "Apache-2.0",
    "Apache License 2.0": "Apache-2.0",
    "Apache License, Version 2.0": "Apache-2.0",
    "Apache License Version 2.0": "Apache-2.0",
    "Apache License (2.0)": "Apache-2.0",
    "Apache License v2": "Apache-2.0",
    "Apache License v2.0": "Apache-2.0",
    "Apache Software License": "Apache-2.0",
    "Apache Software License 2.0": "Apache-2.0",
    "Apache Software License, Version 2.0": "Apache-2.0",
    "ASL 2.0": "Apache-2.0",
    "ASL2": "Apache-2.0",
    # BSD
    "BSD 3-Clause": "BSD-3-Clause",
    "BSD 3-Clause License": "BSD-3-Clause",
    "BSD 3 clause": "BSD-3-Clause",
    "BSD (3 clause)": "BSD-3-Clause",
    "BSD-3": "BSD-3-Clause",
    "BSD3": "BSD-3-Clause",
    "3-Clause BSD": "BSD-3-Clause",
    "3-Clause BSD License": "BSD-3-Clause",
    "New BSD": "BSD-3-Clause",
    "New BSD License": "BSD-3-Clause",
    "Modified BSD": "BSD-3-Clause",
    "Modified BSD License": "BSD-3-Clause",
    "Revised BSD License": "BSD-3-Clause",
    "BSD 2-Clause": "BSD-2-Clause",
    "BSD 2-Clause License": "BSD-2-Clause",
    "BSD 2 clause": "BSD-2-Clause",
    "BSD-2": "BSD-2-Clause",
    "BSD2": "BSD-2-Clause",
    "2-Clause BSD": "BSD-2-Clause",
    "2-Clause BSD License": "BSD-2-Clause",
    "Simplified BSD": "BSD-2-Clause",
    "Simplified BSD License": "BSD-2-Clause",
    "FreeBSD": "BSD-2-Clause",
    "0BSD License": "0BSD",
    # GPL family
    "GPLv2": "GPL-2.0-only",
    "GPL v2": "GPL-2.0-only",
    "GPL 2": "GPL-2.0-only",
    "GPL-2": "GPL-2.0-only",
    "GPL version 2": "GPL-2.0-only",
    "GNU GPLv2": "GPL-2.0-only",
    "GNU GPL v2": "GPL-2.0-only",
    "GNU General Public License v2": "GPL-2.0-only",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GPLv2+": "GPL-2.0-or-later",
    "GPL v2+": "GPL-2.0-or-later",
    "GPL-2+": "GPL-2.0-or-later",
    "GPLv2 or later": "GPL-2.0-or-later",
    "GNU GPLv2+": "GPL-2.0-or-later",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GPLv3": "GPL-3.0-only",
    "GPL v3": "GPL-3.0-only",
    "GPL 3": "GPL-3.0-only",
    "GPL-3": "GPL-3.0-only",
    "GPL version 3": "GPL-3.0-only",
    "GNU GPLv3": "GPL-3.0-only",
    "GNU GPL v3": "GPL-3.0-only",
    "GNU GPL 3": "GPL-3.0-only",
    "GNU General Public License v3": "GPL-3.0-only",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GPLv3+": "GPL-3.0-or-later",
    "GPL v3+": "GPL-3.0-or-later",
    "GPL-3+": "GPL-3.0-or-later",
    "GPLv3 or later": "GPL-3.0-or-later",
    "GNU GPLv3+": "GPL-3.0-or-later",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "LGPLv2": "LGPL-2.0-only",
    "LGPL v2": "LGPL-2.0-only",
    "LGPLv2+": "LGPL-2.0-or-later",
    "LGPLv2.1": "LGPL-2.1-only",
    "LGPL v2.1": "LGPL-2.1-only",
    "LGPL 2.1": "LGPL-2.1-only",
    "LGPLv2.1+": "LGPL-2.1-or-later",
    "LGPL v2.1+": "LGPL-2.1-or-later",
    "LGPLv3": "LGPL-3.0-only",
    "LGPL v3": "LGPL-3.0-only",
    "LGPL 3": "LGPL-3.0-only",
    "GNU LGPLv3": "LGPL-3.0-only",
    "GNU LGPL v3": "LGPL-3.0-only",
    "LGPLv3+": "LGPL-3.0-or-later",
    "LGPL v3+": "LGPL-3.0-or-later",
    "GNU LGPLv3+": "LGPL-3.0-or-later",
    "AGPLv3": "AGPL-3.0-only",
    "AGPL v3": "AGPL-3.0-only",
    "AGPL 3": "AGPL-3.0-only",
    "GNU AGPLv3": "AGPL-3.0-only",
    "GNU AGPL v3": "AGPL-3.0-only",
    "AGPLv3+": "AGPL-3.0-or-later",
    "GNU AGPLv3+": "AGPL-3.0-or-later",
    # Others
    "MPL 2.0": "MPL-2.0",
    "MPL 2": "MPL-2.0",
    "MPL2": "MPL-2.0",
    "MPLv2": "MPL-2.0",
    "MPL v2": "MPL-2.0",
    "Mozilla Public License 2.0": "MPL-2.0",
    "Mozilla Public License Version 2.0": "MPL-2.0",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "MPL 1.1": "MPL-1.1",
    "PSF": "PSF-2.0",
    "PSFL": "PSF-2.0",
    "PSF License": "PSF-2.0",
    "PSF-2": "PSF-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "ISC License": "ISC",
    "ISCL": "ISC",
    "ISC License (ISCL)": "ISC",
    "Unlicense": "Unlicense",
    "The Unlicense (Unlicense)": "Unlicense",
    "CC0": "CC0-1.0",
    "CC0 1.0": "CC0-1.0",
    "CC0 1.0 Universal": "CC0-1.0",
    "zlib License": "Zlib",
    "zlib/libpng": "Zlib",
    "zlib/libpng License": "Zlib",
    "Boost": "BSL-1.0",
    "Boost Software License": "BSL-1.0",
    "Boost Software License 1.0": "BSL-1.0",
    "EPL 1.0": "EPL-1.0",
    "EPL 2.0": "EPL-2.0",
    "Eclipse Public License 1.0": "EPL-1.0",
    "Eclipse Public License 2.0": "EPL-2.0",
    "EUPL 1.2": "EUPL-1.2",
    "ZPL 2.1": "ZPL-2.1",
    "Zope Public License 2.1": "ZPL-2.1",
    "Artistic 2.0": "Artistic-2.0",
    "Artistic License 2.0": "Artistic-2.0",
    "WTFPL License": "WTFPL",
}

#: Legacy ``License`` field values (keys normalised with :func:`_alias_key`) -> SPDX id, or
#: ``None`` for names that are ambiguous ("BSD", "GPL") or say nothing ("UNKNOWN").
LEGACY_LICENSE_ALIASES: Final[Mapping[str, str | None]] = {
    _alias_key(name): spdx for name, spdx in _RAW_LEGACY_ALIASES.items()
}

_COMPOUND_SPLIT: Final = re.compile(r"\s+(or|and)\s+", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# Where the expression comes from


def canonical_expression(text: str | None) -> str | None:
    """``canonicalize_license_expression(text)``, or ``None`` if empty or invalid."""
    if text is None or not text.strip():
        return None
    try:
        return str(canonicalize_license_expression(text.strip()))
    except InvalidLicenseExpression:
        return None


def _legacy_name_to_spdx(name: str) -> str | None:
    key = _alias_key(name)
    if not key:
        return None
    if key in LEGACY_LICENSE_ALIASES:  # explicit entries win, including ambiguous -> None
        return LEGACY_LICENSE_ALIASES[key]
    canonical = canonical_expression(name)
    if canonical is not None:
        return canonical
    if key.endswith(" license"):
        stripped = key.removesuffix(" license")
        if stripped in LEGACY_LICENSE_ALIASES:
            return LEGACY_LICENSE_ALIASES[stripped]
    parts = _COMPOUND_SPLIT.split(name.strip())
    if len(parts) > 1:  # "MIT or Apache 2.0": map each operand, keep the operators
        operands = parts[0::2]
        mapped = [_legacy_name_to_spdx(operand) for operand in operands]
        if all(m is not None and " " not in m for m in mapped):
            pieces = [str(mapped[0])]
            for operator, operand in zip(parts[1::2], mapped[1:]):
                pieces += [operator.upper(), str(operand)]
            return canonical_expression(" ".join(pieces))
    return None


def legacy_license_to_spdx(text: str | None) -> str | None:
    """Map a legacy ``License`` core-metadata value to a canonical SPDX expression.

    Tried in order: the alias table (so "UNKNOWN", "BSD" or "GPL" give ``None`` on purpose),
    the value as an SPDX expression ("mit", "Apache-2.0", "MIT OR Apache-2.0"), the alias table
    without a trailing "License", and "A or B"/"A and B" with each operand mapped. A value with
    several lines or over :data:`MAX_LEGACY_NAME_LENGTH` characters is a license text: only its
    first non-empty line is tried ("MIT License", "BSD 3-Clause License"...). ``None`` when
    nothing maps.
    """
    if text is None:
        return None
    stripped = text.strip()
    if not stripped:
        return None
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    if len(lines) > 1 or len(stripped) > MAX_LEGACY_NAME_LENGTH:
        first = lines[0]
        if len(first) > MAX_LEGACY_NAME_LENGTH:
            return None
        return _legacy_name_to_spdx(first)
    return _legacy_name_to_spdx(stripped)


def classifiers_to_spdx(classifiers: Iterable[str] | None) -> str | None:
    """Map ``License ::`` classifiers to a canonical SPDX expression, or ``None``.

    Several mappable classifiers are joined with ``" OR "`` (order of first appearance, no
    duplicates): listing several licenses in classifiers almost always means a choice (dual
    licensing). Choosing OR is also safe under this module's evaluation: unmappable
    classifiers (``BSD License``, ``Other/Proprietary License``...) are dropped, and dropping an
    OR alternative can only make a verdict stricter. Non-license classifiers are ignored.
    """
    found: dict[str, None] = {}
    for classifier in classifiers or ():
        normalized = " :: ".join(part.strip() for part in classifier.split("::"))
        spdx = CLASSIFIER_TO_SPDX.get(normalized)
        if spdx is not None:
            found[spdx] = None
    if not found:
        return None
    return canonical_expression(" OR ".join(found))


def license_expression_from(
    license_expression: str | None,
    license: str | None,
    classifiers: Iterable[str] | None = (),
) -> tuple[str | None, LicenseSource]:
    """The distribution's canonical SPDX expression and which metadata field gave it.

    Order: ``License-Expression`` (if it canonicalizes; an invalid one falls through), then
    :func:`legacy_license_to_spdx` of ``License``, then :func:`classifiers_to_spdx`. Returns
    ``(None, "none")`` when no source yields an expression.
    """
    expression = canonical_expression(license_expression)
    if expression is not None:
        return expression, "License-Expression"
    expression = legacy_license_to_spdx(license)
    if expression is not None:
        return expression, "License"
    expression = classifiers_to_spdx(classifiers)
    if expression is not None:
        return expression, "classifiers"
    return None, "none"


# --------------------------------------------------------------------------------------------
# Expression tree


@dataclass(frozen=True, slots=True)
class LicenseTerm:
    """A single license: ``id`` (SPDX id or ``LicenseRef-*``), ``plus`` for a trailing ``+``,
    ``exception`` for ``WITH <exception>``."""

    id: str
    plus: bool = False
    exception: str | None = None

    def __str__(self) -> str:
        text = self.id + ("+" if self.plus else "")
        return f"{text} WITH {self.exception}" if self.exception else text


@dataclass(frozen=True, slots=True)
class LicenseAnd:
    """All of ``terms`` apply (two or more; never directly nested in another ``LicenseAnd``)."""

    terms: tuple[LicenseNode, ...]

    def __str__(self) -> str:
        return " AND ".join(f"({t})" if isinstance(t, LicenseOr) else str(t) for t in self.terms)


@dataclass(frozen=True, slots=True)
class LicenseOr:
    """Any one of ``terms`` may be chosen (two or more; never directly nested in another)."""

    terms: tuple[LicenseNode, ...]

    def __str__(self) -> str:
        return " OR ".join(str(t) for t in self.terms)


LicenseNode: TypeAlias = "LicenseTerm | LicenseAnd | LicenseOr"

_TOKEN: Final = re.compile(r"\s*(?:(\()|(\))|([^\s()]+))")
_IDSTRING: Final = re.compile(r"(?:DocumentRef-[A-Za-z0-9.\-]+:)?[A-Za-z0-9.\-]+")
_OPERATORS: Final[frozenset[str]] = frozenset({"AND", "OR", "WITH"})


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # only trailing whitespace is left
            break
        token = match.group(1) or match.group(2) or match.group(3)
        position = match.end()
        if token is None:
            break
        upper = token.upper()
        tokens.append(upper if upper in _OPERATORS else token)
    return tokens


class _Parser:
    """Recursive descent over SPDX tokens.

    or  := and ("OR" and)*
    and := with ("AND" with)*
    with := "(" or ")" | ID ["+"] ["WITH" ID]
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.position = 0

    def error(self, message: str) -> LicenseExpressionError:
        return LicenseExpressionError(f"invalid license expression {self.text!r}: {message}")

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise self.error("unexpected end")
        self.position += 1
        return token

    def parse(self) -> LicenseNode:
        if not self.tokens:
            raise self.error("empty expression")
        node = self.parse_or()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()!r}")
        return node

    def parse_or(self) -> LicenseNode:
        terms = [self.parse_and()]
        while self.peek() == "OR":
            self.take()
            terms.append(self.parse_and())
        return _combine(LicenseOr, terms)

    def parse_and(self) -> LicenseNode:
        terms = [self.parse_with()]
        while self.peek() == "AND":
            self.take()
            terms.append(self.parse_with())
        return _combine(LicenseAnd, terms)

    def parse_with(self) -> LicenseNode:
        token = self.take()
        if token == "(":
            node = self.parse_or()
            if self.take() != ")":
                raise self.error("missing ')'")
            if self.peek() == "WITH":
                raise self.error("WITH must follow a single license id")
            return node
        if token in _OPERATORS or token == ")":
            raise self.error(f"unexpected {token!r}")
        plus = token.endswith("+")
        license_id = token[:-1] if plus else token
        if not _IDSTRING.fullmatch(license_id):
            raise self.error(f"bad license id {token!r}")
        exception: str | None = None
        if self.peek() == "WITH":
            self.take()
            exception = self.take()
            if exception in _OPERATORS or exception in ("(", ")") or not _IDSTRING.fullmatch(exception):
                raise self.error(f"bad exception id {exception!r}")
        return LicenseTerm(license_id, plus, exception)


def _combine(kind: type[LicenseAnd | LicenseOr], terms: list[LicenseNode]) -> LicenseNode:
    if len(terms) == 1:
        return terms[0]
    flat: list[LicenseNode] = []
    for term in terms:  # AND/OR are associative: (a AND b) AND c == a AND b AND c
        flat.extend(term.terms if isinstance(term, kind) else (term,))
    return kind(tuple(flat))


def parse_license_expression(text: str) -> LicenseNode:
    """Parse an SPDX license expression into a tree (syntax only; ids are not validated).

    ``AND`` binds tighter than ``OR``; operators are case-insensitive; same-operator groups are
    flattened; redundant parentheses disappear. ``str(node)`` renders it back with the minimal
    parentheses. Raises :class:`LicenseExpressionError` on a syntax error.
    """
    return _Parser(text).parse()


# --------------------------------------------------------------------------------------------
# Policy evaluation


@dataclass(frozen=True, slots=True)
class LicenseVerdict:
    """The outcome of :func:`evaluate`.

    :ivar decision: ``allow``, ``deny`` or ``review``.
    :ivar expression: the canonical SPDX expression evaluated, or ``None`` if there was none
        or it was invalid.
    :ivar reason: a human-readable explanation (raw text).
    :ivar chosen: for ``allow`` (and ``review``), the licenses actually relied on, with each
        ``OR`` resolved to its chosen branch (e.g. ``MIT AND BSD-3-Clause`` for
        ``(MIT OR Apache-2.0) AND BSD-3-Clause`` when Apache-2.0 is denied); ``None`` for deny
        or without an expression.
    """

    decision: Decision
    expression: str | None
    reason: str
    chosen: str | None


_RANK: Final[dict[Decision, int]] = {"deny": 0, "review": 1, "allow": 2}
_UNKNOWN_DECISION: Final[dict[str, Decision]] = {"review": "review", "allow": "allow", "block": "deny"}

#: GNU ids whose bare form is deprecated in SPDX 3: "GPL-2.0" means "GPL-2.0-only" and
#: "GPL-2.0+" means "GPL-2.0-or-later".
_GNU_IDS: Final[frozenset[str]] = frozenset(
    {
        "gpl-1.0", "gpl-2.0", "gpl-3.0",
        "lgpl-2.0", "lgpl-2.1", "lgpl-3.0",
        "agpl-1.0", "agpl-3.0",
        "gfdl-1.1", "gfdl-1.2", "gfdl-1.3",
    }
)  # fmt: skip


def _term_keys(term: LicenseTerm) -> list[str]:
    """Lookup keys for ``term``, most specific first (case-folded).

    ``X WITH e`` -> ``x with e`` then the keys of ``X``. ``X+`` -> ``x+`` then ``x`` (the
    licensee may pick version X). GNU ids are normalised: ``GPL-2.0`` == ``GPL-2.0-only``,
    ``GPL-2.0+`` == ``GPL-2.0-or-later``, and ``-or-later`` falls back to ``-only``.
    """
    base = term.id.casefold()
    gnu = base.removesuffix("-only").removesuffix("-or-later")
    keys: list[str]
    if gnu in _GNU_IDS:
        if term.plus or base.endswith("-or-later"):
            keys = [f"{gnu}-or-later", f"{gnu}-only"]
        else:
            keys = [f"{gnu}-only"]
    elif term.plus:
        keys = [f"{base}+", base]
    else:
        keys = [base]
    if term.exception:
        keys.insert(0, f"{keys[0]} with {term.exception.casefold()}")
    return keys


def _policy_key(entry: str) -> str:
    canonical = canonical_expression(entry)
    if canonical is None:
        raise LicenseExpressionError(f"not a valid SPDX license id: {entry!r}")
    node = parse_license_expression(canonical)
    if not isinstance(node, LicenseTerm):
        raise LicenseExpressionError(
            f"allow/deny entries must be one license (optionally WITH an exception): {entry!r}"
        )
    return _term_keys(node)[0]


@dataclass(frozen=True, slots=True)
class _Outcome:
    decision: Decision
    chosen: LicenseNode | None
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LicensePolicy:
    """Validated allow/deny lists; build with :meth:`build`, reuse for many evaluations.

    :ivar allow, deny: lookup keys (see :func:`_term_keys`), case-folded.
    :ivar unknown: what to do when there is no (valid) expression.
    """

    allow: frozenset[str]
    deny: frozenset[str]
    unknown: UnknownPolicy = "review"

    @classmethod
    def build(
        cls, allow: Collection[str] = (), deny: Collection[str] = (), unknown: UnknownPolicy = "review"
    ) -> LicensePolicy:
        """Validate and normalise the lists.

        Each entry must be one SPDX license id or ``LicenseRef-*``, optionally with ``+`` or
        ``WITH <exception>``, in any case (``mit``, ``GPL-2.0-only WITH Classpath-exception-2.0``).

        :raises LicenseExpressionError: an entry is not a valid single license (a typo in a deny
            list must not silently match nothing).
        :raises ValueError: ``unknown`` is not ``review``, ``allow`` or ``block``.
        """
        if unknown not in _UNKNOWN_DECISION:
            raise ValueError(f"unknown must be 'review', 'allow' or 'block', not {unknown!r}")
        if isinstance(allow, str) or isinstance(deny, str):
            raise TypeError("allow and deny must be collections of license ids, not strings")
        return cls(
            allow=frozenset(_policy_key(e) for e in allow),
            deny=frozenset(_policy_key(e) for e in deny),
            unknown=unknown,
        )

    def term_decision(self, term: LicenseTerm) -> tuple[Decision, str]:
        """The decision for one license and why.

        Keys are tried most specific first (``id WITH exception``, then ``id``; ``id+`` then
        ``id``); the first key found in either list decides, deny beating allow on that key.
        A license in neither list is allowed when the allow list is empty, else ``review``.
        """
        for key in _term_keys(term):
            if key in self.deny:
                return "deny", f"{term} is denied"
            if key in self.allow:
                return "allow", f"{term} is allowed"
        if not self.allow:
            return "allow", f"{term} is not denied"
        return "review", f"{term} is not in the allow list"

    def _walk(self, node: LicenseNode) -> _Outcome:
        if isinstance(node, LicenseTerm):
            decision, note = self.term_decision(node)
            return _Outcome(decision, None if decision == "deny" else node, (note,))
        outcomes = [self._walk(term) for term in node.terms]
        if isinstance(node, LicenseOr):
            best = max(outcomes, key=lambda o: _RANK[o.decision])  # first of equals wins
            if best.decision == "deny":
                return _Outcome("deny", None, tuple(n for o in outcomes for n in o.notes))
            return best
        worst = min(_RANK[o.decision] for o in outcomes)
        decision = next(o.decision for o in outcomes if _RANK[o.decision] == worst)
        notes = tuple(n for o in outcomes if o.decision == decision for n in o.notes)
        if decision == "deny":
            return _Outcome("deny", None, notes)
        chosen = _combine(LicenseAnd, [o.chosen for o in outcomes if o.chosen is not None])
        return _Outcome(decision, chosen, notes)

    def evaluate(self, expression: str | None) -> LicenseVerdict:
        """Judge an SPDX expression (see :func:`evaluate`)."""
        if expression is None or not expression.strip():
            decision = _UNKNOWN_DECISION[self.unknown]
            return LicenseVerdict(decision, None, f"no license expression (unknown: {self.unknown})", None)
        try:
            canonical = str(canonicalize_license_expression(expression.strip()))
            tree = parse_license_expression(canonical)
        except (InvalidLicenseExpression, LicenseExpressionError) as exc:
            decision = _UNKNOWN_DECISION[self.unknown]
            return LicenseVerdict(
                decision,
                None,
                f"invalid license expression {expression.strip()!r} ({exc}; unknown: {self.unknown})",
                None,
            )
        outcome = self._walk(tree)
        chosen = None if outcome.chosen is None else str(outcome.chosen)
        details = "; ".join(dict.fromkeys(outcome.notes))
        if outcome.decision == "allow":
            reason = f"allowed via {chosen}: {details}"
        elif outcome.decision == "review":
            reason = f"needs review ({chosen}): {details}"
        else:
            reason = f"denied: {details}"
        return LicenseVerdict(outcome.decision, canonical, reason, chosen)


def evaluate(
    expression: str | None,
    allow: Collection[str],
    deny: Collection[str],
    unknown: UnknownPolicy = "review",
) -> LicenseVerdict:
    """Judge an SPDX ``expression`` against ``allow``/``deny`` lists.

    The expression is canonicalized with :func:`packaging.licenses.canonicalize_license_expression`
    and parsed into a tree. Each license gets :meth:`LicensePolicy.term_decision` (deny if
    denied; allow if allowed or if the allow list is empty; else review). ``OR`` takes its best
    branch (allow > review > deny; the left-most among equals) and reports it as ``chosen``;
    ``AND`` takes its worst term. Ids compare case-insensitively after canonicalization.

    No expression, or one that packaging rejects, follows ``unknown``: ``"review"`` -> review,
    ``"block"`` -> deny, ``"allow"`` -> allow.

    :raises LicenseExpressionError: an allow/deny entry is invalid (see :meth:`LicensePolicy.build`).
    """
    return LicensePolicy.build(allow, deny, unknown).evaluate(expression)
