"""The data contract: one schema per table, documented from itself."""

from __future__ import annotations

import ast
from pathlib import Path

from wulian.contract import vocab
from wulian.contract.formats import render_formats
from wulian.contract.problems import CATALOGUE
from wulian.contract.schema import REQUIRED_TABLES, TABLES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "formats.md"


def test_formats_doc_is_generated_from_the_schema():
    """docs/formats.md is exactly what the schema renders (run `make formats` after a change)."""
    assert DOCS.read_text(encoding="utf-8") == render_formats() + "\n"


def test_required_and_optional_tables():
    """Seven tables are required; volunteers, history and pins are optional."""
    assert set(REQUIRED_TABLES) == {"centres", "services", "households", "needs", "providers",
                                    "offers", "funds"}
    assert {n for n, t in TABLES.items() if not t.required} == {"volunteers", "history", "pins"}


def test_every_column_is_described_in_both_languages():
    """Each column declares a Chinese and an English description, and references resolve."""
    for table in TABLES.values():
        assert table.key in ("", *table.column_names)
        for col in table.columns:
            assert col.zh and col.en, (table.name, col.name)
            if col.ref:
                target, column = col.ref.split(".")
                assert TABLES[target].key == column


def test_every_problem_code_has_four_texts():
    """Each problem code renders a Chinese and English message and hint."""
    assert all(len(texts) == 4 and all(texts) for texts in CATALOGUE.values())


def test_fourteen_slots_in_calendar_order():
    """The week has 14 half-day slots, Monday morning first."""
    assert len(vocab.SLOTS) == 14
    assert list(vocab.SLOTS)[:3] == ["mon_am", "mon_pm", "tue_am"]


def _our_imports(folder: str) -> dict[str, set[str]]:
    """For each module under ``folder``, the ``wulian.*`` modules it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = {n for n in names if n.split(".")[0] == "wulian"}
    return found


def test_the_contract_and_the_optimizer_depend_on_nothing_else_of_ours():
    """contract/ imports only itself; optimizer/ only itself and contract/ (data flows one way,
    docs/architecture.md)."""
    for folder, allowed in (("contract", ("wulian.contract",)),
                            ("optimizer", ("wulian.optimizer", "wulian.contract"))):
        for module, names in _our_imports(folder).items():
            stray = {n for n in names if not any(n == a or n.startswith(a + ".") for a in allowed)}
            assert not stray, (module, stray)


def test_every_reason_has_a_chinese_name():
    """The reason codes are listed once (contract.vocab), each with its Chinese name."""
    codes = vocab.ALLOCATION_REASONS + vocab.MATCHING_REASONS
    assert len(set(codes)) == len(codes)
    assert set(vocab.REASON_ZH) == set(codes)
