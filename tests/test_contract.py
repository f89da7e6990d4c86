"""The one rule for a script's section separator lines, shared by every part."""

from __future__ import annotations

import pytest

from opennote_jupyter import contract
from opennote_jupyter.local.render.script import parse_script

SCRIPTS = [
    ("One.\n-----\nTwo.", 2),
    ("One.\n------\nTwo.\n----------\nThree.", 3),
    ("One.\n \t------ \t\nTwo.", 2),
    ("One.\r\n-----\r\nTwo.\r\n ------ \r\nThree.", 3),
    ("One.\n-----\n\n  \n-----\nTwo.", 2),
    ("-----\nOne.\n-----", 1),
    ("One.\n----\nStill one.", 1),
    ("One.\n----- not a separator\nStill one.", 1),
    ("-----\n\n------\n", 0),
    ("Plain prompt text.", 1),
]


@pytest.mark.parametrize(("text", "count"), SCRIPTS)
def test_sections_match_the_renderer(text, count):
    sections = contract.split_script_sections(text)
    assert len(sections) == count
    assert len(parse_script(text)) == count
    assert all(section.strip() for section in sections)


def test_section_text_kept_without_separators():
    sections = contract.split_script_sections("Heat.\r\n ------ \r\nCold.\r\n")
    assert [s.strip() for s in sections] == ["Heat.", "Cold."]
    assert not any("-----" in s or "\r" in s for s in sections)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A\n-----\nB", True),
        ("A\r\n\t-------  \r\nB", True),
        ("A\n----\nB", False),
        ("A ----- B", False),
        ("A\n-----x\nB", False),
    ],
)
def test_separator_line_pattern(text, expected):
    assert bool(contract.SECTION_SEPARATOR_LINE.search(text)) is expected
    assert contract.SECTION_SEPARATOR_LINE.fullmatch(contract.SECTION_SEPARATOR)
