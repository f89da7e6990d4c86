"""Which dollar signs start inline math on slides and in the narration."""

from __future__ import annotations

import pytest

from opennote_jupyter.local.render.layout import tokenize


def math_tokens(text: str) -> list[str]:
    return [token.text for token in tokenize(text) if token.math]


@pytest.mark.parametrize(
    "text",
    [
        "The price is $x and {y} dollars. Keep $HOME and {braces}.",
        "It costs $5 and $6 today.",
        "$20,000 and $30,000",
        "a broken $ sign",
        "spaces inside $ x $ are not math",
        "a closing dollar before a digit $a$5",
    ],
)
def test_dollar_text_stays_plain(text):
    tokens = tokenize(text)
    assert not [token for token in tokens if token.math]
    assert " ".join(token.spoken for token in tokens) == " ".join(text.split())


def test_formulas_are_math():
    assert math_tokens("Energy $E=mc^2$, where $c$ is light.") == ["E=mc^2", "c"]


def test_fraction_is_math():
    assert math_tokens(r"Half is $\frac{1}{2}$ here.") == [r"\frac{1}{2}"]
