"""Slide layout, captions and script parsing of the local renderer."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opennote_jupyter.contract import MAX_SCRIPT_CHARS
from opennote_jupyter.local.render import RenderRequest, captions, layout, slides
from opennote_jupyter.local.render.script import (
    build_script,
    parse_script,
    sections_from_messages,
)

RIGHT_EDGE = layout.WIDTH - layout.MARGIN_X

words = st.one_of(
    st.text(alphabet="abcdefghij", min_size=1, max_size=12),
    st.text(alphabet="Wm", min_size=60, max_size=200),  # wider than a line
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(
        [
            "$x^2$",
            "$\\frac{a}{b}$",
            "$E=mc^2$,",
            "$",
            "$$",
            "$\\frac{$",
            "$\\undefinedcommand{x}$",
            "$" + "x+" * 80 + "x$",  # wider than a line: stays literal
            "$\\sum_{i=0}^{n} i$",
            "日本語",
            "😀",
            "-----",
        ]
    ),
)
paragraphs = st.lists(words, min_size=0, max_size=120).map(" ".join)


def check_slide_fits(slide: layout.SlideLayout) -> None:
    for line in slide.lines:
        for run in line.runs:
            width, height, descent = layout.measure(
                run.text, line.size, line.bold, run.math
            )
            assert run.x >= layout.MARGIN_X - 0.01
            assert run.x + width <= RIGHT_EDGE + 0.01, run.text
            assert line.y - (height - descent) >= 0
            assert line.y + descent <= layout.CAPTION_TOP
        assert line.size >= 28


def shown_tokens(slides_: list[layout.SlideLayout]) -> list[int]:
    shown: list[int] = []
    for slide in slides_:
        for line in slide.lines:
            for index in line.tokens:
                if not shown or shown[-1] != index:
                    shown.append(index)
    return shown


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(heading=st.text(max_size=80), body=st.lists(paragraphs, max_size=4))
def test_section_layout_never_overflows(heading, body):
    heading = " ".join(heading.split())
    token_lists = [layout.tokenize(paragraph) for paragraph in body]
    result = layout.layout_section(heading, token_lists, 0)
    for slide in result:
        check_slide_fits(slide)
    total = sum(len(tokens) for tokens in token_lists)
    assert shown_tokens(result) == list(range(total))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=paragraphs)
def test_title_layout_never_overflows(title):
    result = layout.layout_title(title)
    assert result
    for slide in result:
        check_slide_fits(slide)
    if title.split():
        assert shown_tokens(result) == list(range(len(layout.tokenize(title, 60))))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=paragraphs)
def test_caption_cues_fit_one_line(text):
    timed = [(word, i * 0.3, i * 0.3 + 0.3) for i, word in enumerate(text.split())]
    cues = captions.group_words(timed)
    for cue in cues:
        width = layout.measure(cue.text, layout.CAPTION_SIZE, False, False)[0]
        assert width <= layout.MAX_LINE_WIDTH
        assert cue.start <= cue.end
    starts = [cue.start for cue in cues]
    assert starts == sorted(starts)
    joined = "".join(cue.text.replace(" ", "") for cue in cues)
    assert joined == layout.displayable("".join(text.split()))


@pytest.mark.parametrize(
    "text",
    [
        "W" * 400,
        " ".join("W" * k for k in range(1, 40)),
        "$" + "\\frac{1}{2}+" * 30 + "x$ and words after it",
        "mixed 日本語 😀 text with $\\alpha^2$ and a $ broken sign " * 6,
    ],
)
def test_drawn_slide_keeps_margins_clear(text):
    result = layout.layout_section("Heading", [layout.tokenize(text)], 0)
    background = np.array([255, 255, 255], dtype=np.uint8)
    for slide in result:
        image = slides.draw_slide(slide)
        body = image[20 : layout.CAPTION_TOP]
        # Glyph ink may overhang its advance width by a few pixels at most.
        right_margin = body[:, RIGHT_EDGE + 8 :]
        left_margin = body[:, : layout.MARGIN_X - 8]
        assert (right_margin == background).all()
        assert (left_margin == background).all()


def _luminance(color: str) -> float:
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [
        c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(first: str, second: str) -> float:
    high, low = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize(
    ("text", "background"),
    [
        (slides.BODY_COLOR, slides.LIGHT_BACKGROUND),
        (slides.HEADING_COLOR, slides.LIGHT_BACKGROUND),
        (slides.TITLE_COLOR, slides.DARK_BACKGROUND),
        (slides.CAPTION_COLOR, slides.CAPTION_BACKGROUND),
    ],
)
def test_text_contrast_at_least_7(text, background):
    assert _contrast(text, background) >= 7.0


def test_text_sizes_at_least_28px():
    assert layout.BODY_SIZE >= 28
    assert layout.CAPTION_SIZE >= 28
    assert min(layout.TITLE_SIZES) >= 28
    assert layout.HEADING_SIZE >= 28


def test_caption_band_draws_text():
    band = slides.draw_caption(["Hello captions"])
    empty = slides.empty_caption()
    assert band.shape == empty.shape
    assert (band != empty).any()
    assert band.max() > 200


def test_espeak_event_struct_layout():
    from opennote_jupyter.local.render.voice import _Event

    pointer = ctypes.sizeof(ctypes.c_void_p)
    assert _Event.user_data.offset == 24
    assert _Event.id.offset == 24 + pointer
    assert ctypes.sizeof(_Event) == 24 + 2 * pointer


def test_parse_script_headings():
    sections = parse_script(
        "Intro\nFirst body line.\n\nSecond paragraph.\n-----\n"
        "A single line without heading.\n ------ \n\n-----\nLast\nEnd."
    )
    assert [s.heading for s in sections] == ["Intro", "", "Last"]
    assert sections[0].paragraphs == ("First body line.", "Second paragraph.")
    assert sections[1].paragraphs == ("A single line without heading.",)


def test_messages_split_without_new_words():
    messages = (("user", "One. Two. Three. Four. Five."),)
    sections, subject, notes = sections_from_messages(messages, 2)
    assert len(sections) == 2
    assert [s.heading for s in sections] == ["Part 1 of 2", "Part 2 of 2"]
    assert not any(s.narrate_heading for s in sections)
    text = " ".join(p for s in sections for p in s.paragraphs)
    assert text == "One. Two. Three. Four. Five."
    assert subject == messages[0][1]
    assert notes


def test_messages_fewer_sentences_than_length():
    sections, _, notes = sections_from_messages((("user", "Only one"),), 4)
    assert len(sections) == 1
    assert any("1 section" in note for note in notes)


def test_build_script_title_from_prompt():
    script = build_script(RenderRequest(messages=(("user", "why is the sky blue?"),)))
    assert script.title == "Why is the sky blue"


def test_messages_without_user_rejected():
    with pytest.raises(ValueError, match="no user message"):
        build_script(RenderRequest(messages=(("system", "Be brief."),)))


def test_cues_sharing_a_start_get_time():
    cues = [
        captions.Cue(1.0, 1.0, "first"),
        captions.Cue(1.0, 1.0, "second"),
        captions.Cue(1.0, 2.5, "third"),
        captions.Cue(2.5, 3.0, "fourth"),
    ]
    spread = captions.spread_shared_starts(cues)
    assert [cue.text for cue in spread] == ["first", "second", "third", "fourth"]
    assert [(cue.start, cue.end) for cue in spread] == [
        (1.0, 1.5),
        (1.5, 2.0),
        (2.0, 2.5),
        (2.5, 3.0),
    ]


def test_math_with_emoji_stays_literal(caplog):
    tokens = layout.tokenize("a $x😀$ b")
    assert [token.math for token in tokens] == [False, False, False]
    assert tokens[1].text == "$x😀$"
    assert caplog.records == []


def test_cues_break_at_sentences_and_commas():
    text = "One two. Three four five six, seven eight nine ten eleven twelve thirteen"
    timed = [(word, i * 0.3, i * 0.3 + 0.3) for i, word in enumerate(text.split())]
    cues = captions.group_words(timed)
    assert [cue.text for cue in cues] == [
        "One two.",
        "Three four five six,",
        "seven eight nine ten eleven twelve thirteen",
    ]


def test_caption_blend_in_yuv_matches_rgb():
    from opennote_jupyter.local.render import encode

    lines = ["Blending in YUV, café 42"]
    via_rgb = encode.rgb_to_yuv420(slides.draw_caption(lines)).astype(int)
    full = np.empty_like(slides.empty_caption())
    full[:] = slides.hex_color(slides.CAPTION_COLOR)
    via_yuv = encode.blend_yuv420(
        slides.caption_coverage(lines),
        encode.rgb_to_yuv420(slides.empty_caption()),
        encode.rgb_to_yuv420(full),
    ).astype(int)
    assert via_yuv.shape == via_rgb.shape
    # Rounding in two places differs by at most a couple of code values.
    assert np.abs(via_yuv - via_rgb).max() <= 3
    assert via_yuv[: via_yuv.shape[0] * 2 // 3].max() > 200


def test_long_prompt_is_cut_to_script_limit():
    prompt = "Words go here. " * 8000
    sections, _, notes = sections_from_messages((("user", prompt),), 1)
    narrated = " ".join(p for section in sections for p in section.paragraphs)
    assert len(narrated) <= MAX_SCRIPT_CHARS
    assert narrated.startswith("Words go here. Words go here.")
    assert narrated.endswith("Words go here.")
    assert any("first" in note and "6000" in note for note in notes)


def test_long_sentence_is_cut_at_a_space():
    prompt = "word " * 3000
    sections, _, _ = sections_from_messages((("user", prompt),), 2)
    narrated = " ".join(p for section in sections for p in section.paragraphs)
    assert 0 < len(narrated) <= MAX_SCRIPT_CHARS
    assert set(narrated.split()) == {"word"}


def test_short_prompt_has_no_cut_note():
    _, _, notes = sections_from_messages((("user", "Tides rise. Tides fall."),), 2)
    assert not any("narrated its first" in note for note in notes)


def test_long_prompt_note_counts_exactly():
    prompt = "x" * 5000 + ". " + "y" * 1000 + "."
    assert len(prompt) == 6003
    _, _, notes = sections_from_messages((("user", prompt),), 1)
    assert any("has 6003 characters" in note for note in notes)
    assert any("narrated its first 5001" in note for note in notes)


def test_prompt_of_exactly_script_limit_is_not_cut():
    prompt = "x" * 2999 + ". " + "y" * 2998 + "."
    assert len(prompt) == MAX_SCRIPT_CHARS
    sections, _, notes = sections_from_messages((("user", prompt),), 1)
    assert " ".join(sections[0].paragraphs) == prompt
    assert not any("narrated its first" in note for note in notes)
