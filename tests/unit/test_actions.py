"""edge.navigation.parse: exact reference mappings (docs/vln-models.md §1.7, §2.4), documented deviations, fuzzing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.common.config import ParserConfig
from edge.navigation.parse import ActionParser, Forward, Invalid, Parsed, Stop, Turn, parse_navila, parse_streamvln

DEG = math.pi / 180


def only(result) -> object:
    assert isinstance(result, Parsed), result
    assert len(result.actions) == 1
    return result.actions[0]


# ---- NaVILA habitat (navila_trainer.py) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected, steps",
    [
        ("The next action is move forward 75 cm.", Forward(0.75), 3),
        ("The next action is move forward 25 cm.", Forward(0.25), 1),
        ("The next action is move forward 50 cm", Forward(0.50), 2),
        ("The next action is turn left 30 degrees.", Turn(30 * DEG), 2),
        ("The next action is turn right 45 degrees.", Turn(-45 * DEG), 3),
        ("The next action is turn left 15 degree", Turn(15 * DEG), 1),
        # not a multiple → nearest of {25, 50, 75} / {15, 30, 45}
        ("The next action is move forward 60 cm", Forward(0.50), 2),
        ("The next action is move forward 37 cm", Forward(0.25), 1),
        ("The next action is move forward 38 cm", Forward(0.50), 2),
        ("The next action is move forward 99 cm", Forward(0.75), 3),
        ("The next action is turn left 20 degrees.", Turn(15 * DEG), 1),
        ("The next action is turn right 40 degrees.", Turn(-45 * DEG), 3),
        ("The next action is turn left 100 degrees.", Turn(45 * DEG), 3),
        # multiples pass through
        ("The next action is move forward 100 cm", Forward(1.00), 4),
        ("The next action is move forward 300 cm", Forward(3.00), 12),
        ("The next action is turn left 90 degrees.", Turn(90 * DEG), 6),
        ("The next action is turn right 360 degrees.", Turn(-360 * DEG), 24),
        # 0 still executes one step
        ("The next action is move forward 0 cm.", Forward(0.25), 1),
        ("The next action is turn left 0 degrees.", Turn(15 * DEG), 1),
        # type matches case-insensitively, the argument regex is case-sensitive → default 25 cm / 15°
        ("The next action is Move Forward 75 cm", Forward(0.25), 1),
        ("THE NEXT ACTION IS TURN LEFT 45 DEGREES", Turn(15 * DEG), 1),
        ("The next action is move forward.", Forward(0.25), 1),
        ("The next action is turn right", Turn(-15 * DEG), 1),
        ("The next action is move forward 75 centimeters", Forward(0.25), 1),  # "cm" must follow " "
        # "stop" beats everything; \b keeps "stopping" out
        ("The next action is stop.", Stop(), 1),
        ("Stop", Stop(), 1),
        ("The next action is move forward 75 cm, then stop.", Stop(), 1),
        ("The next action is turn left 30 degrees and STOP", Stop(), 1),
        ("The next action is move forward 25 cm without stopping", Forward(0.25), 1),
        # order forward > left > right when several match; the argument is searched anywhere in the text
        ("The next action is turn left 30 degrees, the next action is move forward 50 cm", Forward(0.50), 2),
        ("The next action is move forward, then turn left 30 degrees", Forward(0.25), 1),
        # Unicode digits: \d and int() accept them, as in the reference
        ("The next action is move forward ٧٥ cm", Forward(0.75), 3),
    ],
)
def test_habitat_exact(text, expected, steps):
    res = parse_navila(text)
    a = only(res)
    assert type(a) is type(expected)
    if isinstance(a, Forward):
        assert a.distance_m == pytest.approx(expected.distance_m)
    if isinstance(a, Turn):
        assert a.angle_rad == pytest.approx(expected.angle_rad)
    assert res.steps == steps and getattr(a, "steps", 1) == steps
    assert a.text == text and res.raw == text and res.grammar == "navila"


def test_habitat_notes_say_what_was_adjusted():
    assert "snapped to 50" in parse_navila("The next action is move forward 60 cm").note
    assert "default 25" in parse_navila("The next action is Move Forward 75 cm").note
    assert parse_navila("The next action is move forward 75 cm.").note == ""


@pytest.mark.parametrize(
    "text",
    [
        "move forward 75 cm",
        "Move forward 75 cm",
        "please move forward 75 cm",
        "turn left 30 degrees",
        "I think the robot should turn right 45 degrees",
    ],
)
def test_habitat_requires_is_prefix(text):
    res = parse_navila(text)
    assert isinstance(res, Invalid) and "no NaVILA action" in res.reason
    assert isinstance(parse_navila(text, require_prefix=False), Parsed)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("move forward 75 cm", Forward(0.75)),
        ("turn left 30 degrees", Turn(30 * DEG)),
        ("turn right 15 degrees", Turn(-15 * DEG)),
        ("move forward 60 cm", Forward(0.50)),
        ("The next action is move forward 75 cm.", Forward(0.75)),  # the prefix stays allowed
        ("stop", Stop()),
        ("remove forward 75 cm", None),  # \b still applies
    ],
)
def test_habitat_without_prefix(text, expected):
    res = parse_navila(text, require_prefix=False)
    if expected is None:
        assert isinstance(res, Invalid)
        return
    a = only(res)
    assert type(a) is type(expected)
    assert getattr(a, "distance_m", 0) == pytest.approx(getattr(expected, "distance_m", 0))
    assert getattr(a, "angle_rad", 0) == pytest.approx(getattr(expected, "angle_rad", 0))


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "The next action is",
        "The next action is to walk ahead.",
        "forward 75 cm",
        "The next action is go.",
        "The next action is move backward 25 cm",
    ],
)
def test_habitat_no_action_is_invalid(text):
    """DEVIATION: the reference maps no match to None and falls through to STOP; we return Invalid (stop and hold)."""
    res = parse_navila(text)
    assert isinstance(res, Invalid) and res.reason and res.raw == text and res.grammar == "navila"


@pytest.mark.parametrize(
    "text, max_forward_m, ok",
    [
        ("The next action is move forward 9999 cm", 3.0, False),  # DEVIATION: the reference snaps this to 75 cm
        ("The next action is move forward 99999999999999999999 cm", 3.0, False),
        ("The next action is move forward 400 cm", 3.0, False),  # reference: 16 steps
        ("The next action is move forward 300 cm", 3.0, True),
        ("The next action is move forward 100 cm", 0.8, False),
        ("The next action is move forward 75 cm", 0.8, True),
        ("The next action is turn left 375 degrees", 3.0, False),
        ("The next action is turn right 720 degrees", 3.0, False),
        ("The next action is move forward " + "9" * 5000 + " cm", 3.0, False),  # past int()'s digit limit
    ],
)
def test_habitat_bounds(text, max_forward_m, ok):
    res = parse_navila(text, max_forward_m=max_forward_m)
    assert isinstance(res, Parsed) is ok, res
    if not ok:
        assert "limit" in res.reason or "too large" in res.reason


def test_turn_bound_is_configurable():
    assert isinstance(parse_navila("The next action is turn left 90 degrees", max_turn_rad=math.pi / 4), Invalid)
    assert isinstance(parse_navila("The next action is turn left 45 degrees", max_turn_rad=math.pi / 4), Parsed)


# ---- NaVILA isaac (get_vel_command) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The next action is move forward 75 cm.", Forward(0.75)),  # 1.5 s × 0.5 m/s
        ("The next action is move forward 50 cm.", Forward(0.50)),
        ("The next action is move forward 25 cm.", Forward(0.25)),
        ("The next action is move forward 60 cm.", Forward(0.25)),  # no "75"/"50"/"25" → 0.5 s
        ("The next action is move forward 100 cm.", Forward(0.25)),
        ("move forward 150 cm", Forward(0.50)),  # "150" contains "50"
        ("move forward 250 cm", Forward(0.50)),  # "50" is checked before "25"
        ("Move Forward 75 CM", Forward(0.75)),  # lower-cased substrings
        ("move 75", Forward(0.75)),  # "move" alone counts
        ("remove the 50 boxes", Forward(0.50)),  # ... even inside a word, as in the reference
        ("The next action is turn left 45 degrees.", Turn(45 * DEG)),  # 1.5 s × π/6
        ("The next action is turn left 30 degrees.", Turn(30 * DEG)),
        ("The next action is turn left 15 degrees.", Turn(15 * DEG)),
        ("The next action is turn left 90 degrees.", Turn(15 * DEG)),
        ("turn right 45", Turn(-45 * DEG)),
        ("turn right 30 degrees then 45", Turn(-45 * DEG)),  # "45" is tested first, wherever it is
        ("turn left then stop", Turn(15 * DEG)),  # turns beat stop
        ("turn right and move forward 75 cm", Turn(-15 * DEG)),  # turns beat move
        ("turn left and turn right 45", Turn(45 * DEG)),  # left beats right
        ("The next action is stop.", Stop()),
        ("STOP", Stop()),
        ("move forward, then stop", Forward(0.25)),  # move beats stop
    ],
)
def test_isaac_exact(text, expected):
    a = only(parse_navila(text, style="isaac"))
    assert type(a) is type(expected)
    assert getattr(a, "distance_m", 0) == pytest.approx(getattr(expected, "distance_m", 0))
    assert getattr(a, "angle_rad", 0) == pytest.approx(getattr(expected, "angle_rad", 0))


@pytest.mark.parametrize("text", ["", "The next action is to wait.", "go ahead 75 cm", "forward"])
def test_isaac_no_keyword_is_invalid(text):
    """DEVIATION: the reference walks forward 0.5 s on text with no keyword; we return Invalid."""
    res = parse_navila(text, style="isaac")
    assert isinstance(res, Invalid) and "0.5 s" in res.reason


def test_isaac_bounds_apply_to_the_result():
    assert isinstance(parse_navila("move forward 75 cm", style="isaac", max_forward_m=0.5), Invalid)


# ---- StreamVLN ---------------------------------------------------------------------------------------------------

F, L, R = Forward(0.25, 1, "↑"), Turn(15 * DEG, 1, "←"), Turn(-15 * DEG, 1, "→")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("↑↑←←", (F, F, L, L)),
        ("↑←→STOP", (F, L, R, Stop("STOP"))),
        ("↑STOP↑", (F, Stop("STOP"))),  # actions after the first STOP dropped
        ("STOP", (Stop("STOP"),)),
        ("STOP↑↑", (Stop("STOP"),)),
        ("↑→→→→→", (F, R, R, R)),  # more than 4 → the first 4
        ("→ ↑ , ←", (R, F, L)),  # separators ignored, as findall does
        ("I go ↑ then ← ", (F, L)),
        ("↑↑↑↑↑STOP", (F, F, F, F)),  # cut to 4 before the STOP is reached
        ("stop↑", (F,)),  # "STOP" is case-sensitive
    ],
)
def test_streamvln_exact(text, expected):
    res = parse_streamvln(text)
    assert isinstance(res, Parsed) and res.grammar == "streamvln" and res.raw == text
    assert len(res.actions) == len(expected)
    for a, e in zip(res.actions, expected):
        assert type(a) is type(e) and a.text == e.text
        assert getattr(a, "distance_m", 0) == pytest.approx(getattr(e, "distance_m", 0))
        assert getattr(a, "angle_rad", 0) == pytest.approx(getattr(e, "angle_rad", 0))


def test_streamvln_notes_and_max_actions():
    assert "cut to the first 4" in parse_streamvln("↑↑↑↑↑↑").note
    assert "after STOP dropped" in parse_streamvln("↑STOP↑").note
    assert len(parse_streamvln("↑↑↑↑↑↑", max_actions=6).actions) == 6
    assert len(parse_streamvln("↑↑↑↑↑↑", max_actions=1).actions) == 1
    assert isinstance(parse_streamvln("↑", max_actions=0), Invalid)


@pytest.mark.parametrize("text", ["", "forward", "stop", "⬆", "↓↓", "->"])
def test_streamvln_no_match_is_invalid(text):
    """DEVIATION: the reference maps no match to [STOP]; our Invalid also stops and holds, and says why."""
    res = parse_streamvln(text)
    assert isinstance(res, Invalid) and res.grammar == "streamvln" and res.reason


# ---- dispatcher, types ----------------------------------------------------------------------------------------


def test_action_parser_dispatches_with_its_configuration():
    p = ActionParser(ParserConfig())
    assert p.parse("The next action is move forward 75 cm.", "navila") == parse_navila(
        "The next action is move forward 75 cm."
    )
    assert isinstance(p.parse("move forward 75 cm", "navila", source="vlm"), Invalid)  # a VLM answer needs the prefix
    assert p.parse("move forward 75 cm", "navila", source="operator").actions[0].distance_m == pytest.approx(0.75)
    isaac = ActionParser(ParserConfig(navila_style="isaac"))
    assert isaac.parse("turn left 30", "navila").actions[0].angle_rad == pytest.approx(30 * DEG)
    assert ActionParser(ParserConfig(streamvln_max_actions=1)).parse("↑↑", "streamvln").actions == (F,)
    assert isinstance(
        ActionParser(ParserConfig(max_forward_m=0.5)).parse("The next action is move forward 75 cm.", "navila"), Invalid
    )
    bad = p.parse("↑", "rt-2")
    assert isinstance(bad, Invalid) and "unknown grammar" in bad.reason
    assert isinstance(parse_navila("stop", style="gazebo"), Invalid)


def test_results_are_frozen_and_flagged():
    res = parse_navila("The next action is stop.")
    assert res.ok and not parse_navila("").ok
    with pytest.raises(AttributeError):
        res.raw = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        res.actions[0].text = "x"  # type: ignore[misc]


def test_non_str_input_is_invalid():
    for bad in (None, 75, b"The next action is stop."):
        assert isinstance(parse_navila(bad), Invalid)  # type: ignore[arg-type]
        assert isinstance(parse_streamvln(bad), Invalid)  # type: ignore[arg-type]


# ---- fuzzing: never raises, always bounded -----------------------------------------------------------------------


def check_bounded(res, max_forward_m=3.0) -> None:
    assert isinstance(res, (Parsed, Invalid))
    if isinstance(res, Invalid):
        assert isinstance(res.reason, str) and res.reason
        return
    assert 1 <= len(res.actions)
    for a in res.actions:
        assert isinstance(a, (Forward, Turn, Stop))
        if isinstance(a, Forward):
            assert math.isfinite(a.distance_m) and 0 < a.distance_m <= max_forward_m
        if isinstance(a, Turn):
            assert math.isfinite(a.angle_rad) and 0 < abs(a.angle_rad) <= 2 * math.pi + 1e-12


sentences = st.from_regex(
    r"\A(The next action is |the next action is |)(move forward|Move Forward|turn left|turn right|stop|move)"
    r"( -?[0-9]{0,25}| [0-9]+\.[0-9]+)?( cm| degrees| degree|)[.!]?\Z"
)
anything = st.one_of(
    st.text(),
    st.text(alphabet="↑←→STOP is move forward turn left right 0123456789 cm"),
    sentences,
    st.binary().map(lambda b: b.decode("utf-8", "replace")),
)


@settings(max_examples=400, deadline=None)
@given(text=anything, style=st.sampled_from(["habitat", "isaac"]), prefix=st.booleans())
def test_fuzz_navila_never_raises(text, style, prefix):
    check_bounded(parse_navila(text, style=style, require_prefix=prefix))


@settings(max_examples=400, deadline=None)
@given(text=anything, n=st.integers(min_value=1, max_value=8))
def test_fuzz_streamvln_never_raises(text, n):
    res = parse_streamvln(text, max_actions=n)
    check_bounded(res)
    if isinstance(res, Parsed):
        assert len(res.actions) <= n
        assert all(not isinstance(a, Stop) for a in res.actions[:-1])


@pytest.mark.parametrize(
    "text",
    [
        "move forward 99999999999999999999 cm",
        "The next action is move forward 99999999999999999999 cm",
        "",
        "\x00",
        "🤖" * 10_000,
        "The next action is " + "move forward " * 20_000 + "75 cm",
        "turn left " + "1" * 100,
    ],
)
def test_extreme_inputs(text):
    for style in ("habitat", "isaac"):
        for prefix in (True, False):
            check_bounded(parse_navila(text, style=style, require_prefix=prefix))
    check_bounded(parse_streamvln(text))
