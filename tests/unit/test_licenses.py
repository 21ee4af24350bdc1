"""Tests for artifactd_plugins.licenses: metadata sources, SPDX parsing, policy evaluation."""

from __future__ import annotations

import pytest
from artifactd_plugins.licenses import (
    CLASSIFIER_TO_SPDX,
    LEGACY_LICENSE_ALIASES,
    LicenseAnd,
    LicenseExpressionError,
    LicenseOr,
    LicensePolicy,
    LicenseTerm,
    LicenseVerdict,
    classifiers_to_spdx,
    evaluate,
    legacy_license_to_spdx,
    license_expression_from,
    parse_license_expression,
)
from packaging.licenses import canonicalize_license_expression

MIT = "License :: OSI Approved :: MIT License"
APACHE = "License :: OSI Approved :: Apache Software License"
BSD = "License :: OSI Approved :: BSD License"


# --------------------------------------------------------------------------------------------
# policy evaluation


def test_or_passes_via_an_allowed_branch() -> None:
    verdict = evaluate("MIT OR GPL-3.0-only", allow=["MIT"], deny=["GPL-3.0-only"])
    assert verdict == LicenseVerdict("allow", "MIT OR GPL-3.0-only", verdict.reason, "MIT")
    assert "MIT" in verdict.reason


def test_or_picks_the_passing_branch_whatever_its_position() -> None:
    verdict = evaluate("GPL-3.0-only OR MIT", allow=["MIT"], deny=["GPL-3.0-only"])
    assert (verdict.decision, verdict.chosen) == ("allow", "MIT")


def test_and_needs_every_term() -> None:
    verdict = evaluate("MIT AND GPL-3.0-only", allow=["MIT"], deny=["GPL-3.0-only"])
    assert (verdict.decision, verdict.chosen) == ("deny", None)
    assert "GPL-3.0-only is denied" in verdict.reason


@pytest.mark.parametrize(
    ("allow", "deny", "decision", "chosen"),
    [
        (["MIT", "Apache-2.0", "BSD-3-Clause"], [], "allow", "MIT AND BSD-3-Clause"),
        (["Apache-2.0", "BSD-3-Clause"], ["MIT"], "allow", "Apache-2.0 AND BSD-3-Clause"),
        (["MIT", "Apache-2.0"], ["BSD-3-Clause"], "deny", None),
        (["MIT"], [], "review", "MIT AND BSD-3-Clause"),
        (["BSD-3-Clause"], ["MIT", "Apache-2.0"], "deny", None),
        ([], [], "allow", "MIT AND BSD-3-Clause"),
    ],
)
def test_nested_or_inside_and(allow: list[str], deny: list[str], decision: str, chosen: str | None) -> None:
    verdict = evaluate("(MIT OR Apache-2.0) AND BSD-3-Clause", allow, deny)
    assert verdict.expression == "(MIT OR Apache-2.0) AND BSD-3-Clause"
    assert (verdict.decision, verdict.chosen) == (decision, chosen)


def test_review_names_the_unlisted_licenses() -> None:
    verdict = evaluate("(MIT OR Apache-2.0) AND BSD-3-Clause", ["MIT"], [])
    assert "BSD-3-Clause is not in the allow list" in verdict.reason


def test_or_prefers_review_over_deny() -> None:
    verdict = evaluate("GPL-3.0-only OR Zlib", allow=["MIT"], deny=["GPL-3.0-only"])
    assert (verdict.decision, verdict.chosen) == ("review", "Zlib")


def test_deny_beats_allow() -> None:
    assert evaluate("MIT", allow=["MIT"], deny=["mit"]).decision == "deny"


def test_empty_allow_list_allows_everything_not_denied() -> None:
    assert evaluate("Zlib AND MIT", allow=[], deny=["GPL-3.0-only"]).decision == "allow"
    assert evaluate("Zlib AND GPL-3.0-only", allow=[], deny=["GPL-3.0-only"]).decision == "deny"


@pytest.mark.parametrize(
    ("allow", "deny", "decision"),
    [
        (["GPL-2.0-only WITH Classpath-exception-2.0"], ["GPL-2.0-only"], "allow"),  # full form first
        ([], ["GPL-2.0-only"], "deny"),  # falls back to the base id
        (["GPL-2.0-only"], [], "allow"),
        (["GPL-2.0-only"], ["GPL-2.0-only WITH Classpath-exception-2.0"], "deny"),
        (["MIT"], [], "review"),
    ],
)
def test_with_exception(allow: list[str], deny: list[str], decision: str) -> None:
    verdict = evaluate("gpl-2.0-only with classpath-exception-2.0", allow, deny)
    assert verdict.expression == "GPL-2.0-only WITH Classpath-exception-2.0"
    assert verdict.decision == decision


def test_plus_and_deprecated_gnu_ids() -> None:
    assert evaluate("GPL-3.0", allow=[], deny=["GPL-3.0-only"]).decision == "deny"  # deprecated == -only
    assert evaluate("GPL-3.0-only", allow=[], deny=["GPL-3.0"]).decision == "deny"
    assert evaluate("GPL-3.0+", allow=[], deny=["GPL-3.0-only"]).decision == "deny"  # may pick 3.0
    assert evaluate("GPL-2.0+", allow=["GPL-2.0-or-later"], deny=[]).decision == "allow"
    assert evaluate("GPL-2.0-or-later", allow=["GPL-2.0-only"], deny=[]).decision == "allow"
    assert evaluate("GPL-2.0-only", allow=["GPL-2.0-or-later"], deny=[]).decision == "review"
    assert evaluate("MPL-1.1+", allow=["MPL-1.1"], deny=[]).decision == "allow"


def test_ids_compare_case_insensitively_after_canonicalization() -> None:
    verdict = evaluate("mit or apache-2.0", allow=["APACHE-2.0"], deny=["mit"])
    assert verdict == LicenseVerdict("allow", "MIT OR Apache-2.0", verdict.reason, "Apache-2.0")
    assert evaluate("LicenseRef-Internal-1", allow=["licenseref-internal-1"], deny=[]).decision == "allow"


@pytest.mark.parametrize("expression", [None, "", "   ", "UNKNOWN", "MIT License", "not a license ("])
@pytest.mark.parametrize(("unknown", "decision"), [("review", "review"), ("block", "deny"), ("allow", "allow")])
def test_unknown_expression_follows_policy(expression: str | None, unknown: str, decision: str) -> None:
    verdict = evaluate(expression, allow=["MIT"], deny=[], unknown=unknown)  # type: ignore[arg-type]
    assert (verdict.decision, verdict.expression, verdict.chosen) == (decision, None, None)
    assert unknown in verdict.reason


def test_unknown_defaults_to_review() -> None:
    assert evaluate(None, allow=[], deny=[]).decision == "review"


@pytest.mark.parametrize("entry", ["Apache2", "MIT OR Apache-2.0", "MIT AND Zlib", "", "(MIT"])
def test_invalid_policy_entries_are_rejected(entry: str) -> None:
    with pytest.raises(LicenseExpressionError):
        evaluate("MIT", allow=[entry], deny=[])
    with pytest.raises(LicenseExpressionError):
        LicensePolicy.build(deny=[entry])


def test_policy_argument_validation() -> None:
    with pytest.raises(ValueError, match="unknown"):
        LicensePolicy.build(["MIT"], [], unknown="maybe")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        LicensePolicy.build("MIT", [])


def test_policy_is_reusable() -> None:
    policy = LicensePolicy.build(allow=["MIT", "Apache-2.0"], deny=["AGPL-3.0-only"], unknown="block")
    assert policy.evaluate("MIT").decision == "allow"
    assert policy.evaluate("AGPL-3.0-or-later").decision == "deny"
    assert policy.evaluate(None).decision == "deny"


# --------------------------------------------------------------------------------------------
# parsing


def test_and_binds_tighter_than_or() -> None:
    assert parse_license_expression("MIT OR Apache-2.0 AND BSD-3-Clause") == LicenseOr(
        (LicenseTerm("MIT"), LicenseAnd((LicenseTerm("Apache-2.0"), LicenseTerm("BSD-3-Clause"))))
    )


def test_parentheses_with_plus_and_licenseref() -> None:
    tree = parse_license_expression("(GPL-2.0+ WITH Bison-exception-2.2 or LicenseRef-Foo) and Zlib")
    assert tree == LicenseAnd(
        (
            LicenseOr((LicenseTerm("GPL-2.0", True, "Bison-exception-2.2"), LicenseTerm("LicenseRef-Foo"))),
            LicenseTerm("Zlib"),
        )
    )
    assert str(tree) == "(GPL-2.0+ WITH Bison-exception-2.2 OR LicenseRef-Foo) AND Zlib"


def test_same_operator_groups_are_flattened() -> None:
    tree = parse_license_expression("((A AND B) AND (C)) AND (D OR (E OR F))")
    assert str(tree) == "A AND B AND C AND (D OR E OR F)"
    assert isinstance(tree, LicenseAnd) and len(tree.terms) == 4
    assert parse_license_expression("DocumentRef-spdx:LicenseRef-x") == LicenseTerm("DocumentRef-spdx:LicenseRef-x")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "MIT OR",
        "(MIT",
        "MIT)",
        "AND MIT",
        "MIT Apache-2.0",
        "(MIT OR Zlib) WITH x",
        "MIT WITH",
        "MIT WITH (x)",
        "M!T",
        "()",
    ],
)
def test_syntax_errors(text: str) -> None:
    with pytest.raises(LicenseExpressionError):
        parse_license_expression(text)


# --------------------------------------------------------------------------------------------
# where the expression comes from


def test_license_expression_field_wins() -> None:
    assert license_expression_from("mit or apache-2.0", "GPLv3", [MIT]) == ("MIT OR Apache-2.0", "License-Expression")


def test_invalid_license_expression_falls_through() -> None:
    assert license_expression_from("MIT License", "Apache 2.0", [MIT]) == ("Apache-2.0", "License")


@pytest.mark.parametrize(
    ("legacy", "expected"),
    [
        ("MIT", "MIT"),
        ("mit", "MIT"),
        ("MIT License", "MIT"),
        ("The MIT License (MIT)", "MIT"),
        ("Apache 2.0", "Apache-2.0"),
        ("Apache License, Version 2.0", "Apache-2.0"),
        ("Apache Software License", "Apache-2.0"),
        ("GPLv3", "GPL-3.0-only"),
        ("GPLv3+", "GPL-3.0-or-later"),
        ("GNU General Public License v2 or later (GPLv2+)", "GPL-2.0-or-later"),
        ("BSD 3-Clause License", "BSD-3-Clause"),
        ("new BSD", "BSD-3-Clause"),
        ("Simplified BSD", "BSD-2-Clause"),
        ("ISC License", "ISC"),
        ("MPL 2.0", "MPL-2.0"),
        ("PSF", "PSF-2.0"),
        ("Mozilla Public Licence 2.0", "MPL-2.0"),
        ("MIT or Apache 2.0", "MIT OR Apache-2.0"),
        ("mit or apache-2.0", "MIT OR Apache-2.0"),
        ("GPL-3.0+", "GPL-3.0+"),
        ("UNKNOWN", None),
        ("unknown", None),
        ("", None),
        (None, None),
        ("BSD", None),
        ("BSD License", None),
        ("GPL", None),
        ("Public Domain", None),
        ("Copyright 2020 ACME. All rights reserved.", None),
        ("MIT or BSD", None),  # one ambiguous operand spoils the compound
    ],
)
def test_legacy_license_field(legacy: str | None, expected: str | None) -> None:
    assert legacy_license_to_spdx(legacy) == expected


def test_legacy_license_field_holding_a_license_text() -> None:
    mit_text = "MIT License\n\nCopyright (c) 2024 ACME\n\nPermission is hereby granted, free of charge, ..."
    assert legacy_license_to_spdx(mit_text) == "MIT"
    apache_text = " " * 33 + "Apache License\n" + " " * 27 + "Version 2.0, January 2004\n"
    assert legacy_license_to_spdx(apache_text) is None  # first line names no version
    assert legacy_license_to_spdx("Copyright (c) 2024 ACME\n\nPermission is hereby granted") is None
    assert legacy_license_to_spdx("x" * 300) is None
    assert legacy_license_to_spdx("MIT " + "x" * 300) is None
    assert license_expression_from(None, apache_text, [APACHE]) == ("Apache-2.0", "classifiers")


def test_classifier_fallback() -> None:
    assert license_expression_from(None, "UNKNOWN", [MIT]) == ("MIT", "classifiers")
    assert license_expression_from("", "", ["Programming Language :: Python", BSD]) == (None, "none")
    assert license_expression_from(None, None) == (None, "none")


def test_several_classifiers_are_alternatives() -> None:
    classifiers = [MIT, BSD, APACHE, MIT, "Intended Audience :: Developers"]
    assert classifiers_to_spdx(classifiers) == "MIT OR Apache-2.0"
    assert classifiers_to_spdx(["License ::  OSI Approved ::  MIT License"]) == "MIT"  # spacing
    assert classifiers_to_spdx(None) is None


def test_tables_hold_canonical_spdx_ids() -> None:
    for table in (CLASSIFIER_TO_SPDX, LEGACY_LICENSE_ALIASES):
        for key, spdx in table.items():
            if spdx is not None:
                assert str(canonicalize_license_expression(spdx)) == spdx, key
    assert all(key.startswith("License :: ") for key in CLASSIFIER_TO_SPDX)
    assert sum(spdx is not None for spdx in CLASSIFIER_TO_SPDX.values()) >= 30


def test_classifier_fallback_then_policy() -> None:
    gpl3 = "License :: OSI Approved :: GNU General Public License v3 (GPLv3)"
    expression, source = license_expression_from(None, "UNKNOWN", [APACHE, gpl3])
    assert (expression, source) == ("Apache-2.0 OR GPL-3.0-only", "classifiers")
    verdict = evaluate(expression, allow=["Apache-2.0", "MIT"], deny=["GPL-3.0-only"])
    assert (verdict.decision, verdict.chosen) == ("allow", "Apache-2.0")
