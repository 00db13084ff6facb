"""docs/rules.md defines every rule code the product prints.

The package (help texts, details, log lines, the console's templates) and the docs cite rule
codes — V7, K2, C4, ranges like V9–V10 — and each must be defined by a heading of
docs/rules.md; DESIGN's whole set is defined there too.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES_DOC = ROOT / "docs" / "rules.md"
#: A rule code as printed: one of DESIGN's prefixes and a number, standing alone.
CODE = re.compile(r"(?<![\w.])([VMCKSJALT])([0-9]{1,2})(?![\w])")
DEFINED = re.compile(r"^#{2,4} ([VMCKSJALT][0-9]{1,2}) — ", re.MULTILINE)
#: DESIGN's rules: V1–V12, M1–M6, C1–C4, K1–K11, S1–S2, J1–J4, A1–A12, L1–L5, T1–T6.
DESIGN_RULES = {
    f"{prefix}{n}"
    for prefix, last in {"V": 12, "M": 6, "C": 4, "K": 11, "S": 2, "J": 4, "A": 12, "L": 5, "T": 6}.items()
    for n in range(1, last + 1)
}
SUFFIXES = (".py", ".html", ".css", ".sql", ".md", ".txt")


def printed_codes(root: Path) -> dict[str, set[str]]:
    """Every rule code cited under `root` (the package, docs/, README.md) -> where."""
    found: dict[str, set[str]] = {}
    paths = [*(root / "worker").rglob("*"), *(root / "docs").rglob("*.md"), root / "README.md"]
    for path in paths:
        if path.suffix not in SUFFIXES or not path.is_file() or path == RULES_DOC:
            continue
        for match in CODE.finditer(path.read_text(encoding="utf-8")):
            code = match.group(1) + str(int(match.group(2)))
            found.setdefault(code, set()).add(str(path.relative_to(root)))
    return found


def defined_codes() -> set[str]:
    return set(DEFINED.findall(RULES_DOC.read_text(encoding="utf-8")))


def test_every_printed_rule_code_is_defined_in_docs_rules_md() -> None:
    printed = printed_codes(ROOT)
    assert {"V7", "K2", "C4", "L4"} <= printed.keys()  # the scan sees the package's citations
    missing = {code: sorted(where)[:3] for code, where in printed.items() if code not in defined_codes()}
    assert not missing, f"rule codes printed but not defined in docs/rules.md: {missing}"


def test_docs_rules_md_defines_all_of_design_s_rules_once() -> None:
    headings = DEFINED.findall(RULES_DOC.read_text(encoding="utf-8"))
    assert sorted(set(headings)) == sorted(headings), "a rule defined twice"
    assert set(headings) >= DESIGN_RULES


def test_a_code_the_doc_lacks_is_reported(tmp_path: Path) -> None:
    """The scan itself: a made-up code in a package file is found (so a missing one fails)."""
    (tmp_path / "worker").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("see K12 and V9–V10; not RS256 nor 2026-11-24T10:00:00Z\n")
    (tmp_path / "worker" / "x.py").write_text('"""rule M7 (and M1-M6)."""\n')
    assert printed_codes(tmp_path).keys() == {"K12", "V9", "V10", "M7", "M1", "M6"}
