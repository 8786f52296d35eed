"""Language → typed actions. Pure functions, no I/O; parsing never raises on any `str`.

Reference parsers reproduced (docs/vln-models.md §1.7, §2.4):

* NaVILA "habitat" (`navila_trainer.py`): action type by the first case-insensitive match of ``\\bstop\\b``,
  ``\\bis move forward\\b``, ``\\bis turn left\\b``, ``\\bis turn right\\b``; argument by the case-SENSITIVE regexes
  ``move forward (\\d+) cm`` / ``turn (left|right) (\\d+) degree`` (missing → 25 cm / 15°); a value that is not a
  multiple of 25 (15) snaps to the nearest of {25, 50, 75} ({15, 30, 45}); multiples pass through; 0 still runs one
  step. The reference executes value/step primitives; we return ONE action with the total amount (``steps`` keeps
  the primitive count) and the executor runs it as one continuous motion.
* NaVILA "isaac" (`get_vel_command`): substring tests on ``text.lower()``; durations 1.5/1.0/0.5 s at 0.5 m/s and
  π/6 rad/s, converted to 0.75/0.5/0.25 m and 45°/30°/15°.
* StreamVLN: ``re.findall("STOP|↑|←|→", text)`` → 25 cm / ±15° / STOP, in order.

Deviations (safety over fidelity). These give ``Invalid``, on which the navigator stops and holds:

* text matching no action: the habitat reference falls through to STOP, the isaac reference walks forward 0.5 s,
  StreamVLN maps it to STOP;
* habitat: a stated amount above the bounds (default 3 m, 360°) — judged on the number the model wrote, before
  snapping, so "move forward 9999 cm" is refused where the reference snaps it to 75 cm — or a total above them
  (e.g. 400 cm, a multiple of 25, which the reference walks as 16 steps); a number too long for ``int()``
  (the reference's bare ``except`` would default it to 25 cm);
* a non-``str`` input, an unknown style / grammar, ``max_actions < 1``.

And these trim a StreamVLN answer (said in ``Parsed.note``): actions after the first STOP are dropped; more than
``max_actions`` (default 4) are cut to the first ``max_actions`` (the reference runs them all).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Union

from edge.common.config import ParserConfig

FORWARD_STEP_M = 0.25
TURN_STEP_DEG = 15
_DEFAULT = ParserConfig()  # the bounds' defaults live in the config section


@dataclass(frozen=True)
class Forward:
    distance_m: float
    steps: int = 1  # primitive 25 cm steps the reference would execute
    text: str = ""


@dataclass(frozen=True)
class Turn:
    angle_rad: float  # positive = left / CCW
    steps: int = 1  # primitive 15° steps the reference would execute
    text: str = ""


@dataclass(frozen=True)
class Stop:
    text: str = ""


Action = Union[Forward, Turn, Stop]


@dataclass(frozen=True)
class Parsed:
    actions: tuple[Action, ...]
    grammar: str
    raw: str
    note: str = ""  # what the parser adjusted (snapping, truncation), human-readable

    ok = True

    @property
    def steps(self) -> int:
        """Primitive steps in the reference's terms (a Stop counts as one)."""
        return sum(getattr(a, "steps", 1) for a in self.actions)


@dataclass(frozen=True)
class Invalid:
    reason: str
    raw: str
    grammar: str

    ok = False


ParseResult = Union[Parsed, Invalid]

_HABITAT_TYPES = (
    ("stop", r"\bstop\b"),
    ("forward", r"\bis move forward\b"),
    ("left", r"\bis turn left\b"),
    ("right", r"\bis turn right\b"),
)
_TYPES = {
    prefix: tuple(
        (kind, re.compile(p if prefix else p.replace(r"\bis ", r"\b(?:is )?"), re.IGNORECASE))
        for kind, p in _HABITAT_TYPES
    )
    for prefix in (True, False)
}
_ARGS = {
    "forward": re.compile(r"move forward (\d+) cm"),
    "left": re.compile(r"turn left (\d+) degree"),
    "right": re.compile(r"turn right (\d+) degree"),
}
_ARROWS = re.compile("STOP|↑|←|→")


def _invalid(reason: str, raw: object, grammar: str) -> Invalid:
    return Invalid(reason=reason, raw=raw if isinstance(raw, str) else repr(raw)[:200], grammar=grammar)


def _clip(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[:n] + "…")


def _bounded(kind: str, amount_m_or_rad: float, max_forward_m: float, max_turn_rad: float) -> str:
    """'' when within bounds, else the reason."""
    if kind == "forward" and amount_m_or_rad > max_forward_m:
        return f"forward {amount_m_or_rad:.2f} m exceeds the {max_forward_m:g} m limit"
    if kind != "forward" and amount_m_or_rad > max_turn_rad:
        return f"turn {math.degrees(amount_m_or_rad):.0f}° exceeds the {math.degrees(max_turn_rad):.0f}° limit"
    return ""


def _make(kind: str, value: int, text: str) -> Action:
    """kind in forward/left/right, value in cm / degrees (a multiple of the step, or 0 → one step)."""
    step = 25 if kind == "forward" else TURN_STEP_DEG
    steps = max(1, value // step)
    if kind == "forward":
        return Forward(distance_m=steps * FORWARD_STEP_M, steps=steps, text=text)
    angle = math.radians(steps * TURN_STEP_DEG)
    return Turn(angle_rad=angle if kind == "left" else -angle, steps=steps, text=text)


def _habitat(text: str, require_prefix: bool, max_forward_m: float, max_turn_rad: float) -> ParseResult:
    kind = next((k for k, pattern in _TYPES[require_prefix] if pattern.search(text)), None)
    if kind is None:
        return _invalid(
            f"no NaVILA action (stop / move forward / turn left / turn right) in {_clip(text)}", text, "navila"
        )
    if kind == "stop":
        return Parsed(actions=(Stop(text=text),), grammar="navila", raw=text)
    unit, step, snaps = ("cm", 25, (25, 50, 75)) if kind == "forward" else ("°", 15, (15, 30, 45))
    note = ""
    m = _ARGS[kind].search(text)
    if m is None:
        value = step
        note = f"no amount matched '{_ARGS[kind].pattern}', default {step}{unit}"
    else:
        try:
            value = int(m.group(1))
        except ValueError:  # longer than int()'s digit limit
            return _invalid(f"number too large in {_clip(text)}", text, "navila")
    stated = value / 100.0 if kind == "forward" else math.radians(value)
    if reason := _bounded(kind, stated, max_forward_m, max_turn_rad):
        return _invalid(f"{reason} (stated in {_clip(text)})", text, "navila")
    if value % step != 0:
        snapped = min(snaps, key=lambda x: abs(x - value))
        note = f"{value}{unit} snapped to {snapped}{unit}"
        value = snapped
    elif value == 0:
        note = f"0{unit} executes one {step}{unit} step"
    return Parsed(actions=(_make(kind, value, text),), grammar="navila", raw=text, note=note)


def _isaac(text: str) -> ParseResult:
    low = text.lower()

    def steps(numbers: tuple[str, str, str]) -> int:  # "45"/"30"/"15" → 1.5/1.0/0.5 s → 3/2/1 steps
        return next((3 - i for i, n in enumerate(numbers) if n in low), 1)

    if "turn left" in low or "turn right" in low:
        kind = "left" if "turn left" in low else "right"
        return Parsed(
            actions=(_make(kind, TURN_STEP_DEG * steps(("45", "30", "15")), text),), grammar="navila", raw=text
        )
    if "move forward" in low or "move" in low:
        return Parsed(actions=(_make("forward", 25 * steps(("75", "50", "25")), text),), grammar="navila", raw=text)
    if "stop" in low:
        return Parsed(actions=(Stop(text=text),), grammar="navila", raw=text)
    return _invalid(
        f"no NaVILA action (turn left / turn right / move / stop) in {_clip(text)} "
        "(the isaac reference would walk forward 0.5 s)",
        text,
        "navila",
    )


def parse_navila(
    text: str,
    style: str = "habitat",
    require_prefix: bool = True,
    max_forward_m: float = _DEFAULT.max_forward_m,
    max_turn_rad: float = _DEFAULT.max_turn_rad,
) -> ParseResult:
    """One NaVILA answer → ``Parsed`` with one Forward / Turn / Stop, or ``Invalid``. Never raises.

    style: "habitat" (`navila_trainer.py` regexes) or "isaac" (`get_vel_command` substrings).
    require_prefix=False: habitat type patterns accept "move forward …" without the leading "is " (operator input).
    """
    if not isinstance(text, str):
        return _invalid(f"expected str, got {type(text).__name__}", text, "navila")
    if style == "habitat":
        result = _habitat(text, bool(require_prefix), max_forward_m, max_turn_rad)
    elif style == "isaac":
        result = _isaac(text)
    else:
        return _invalid(f"unknown NaVILA parser style {style!r} (habitat | isaac)", text, "navila")
    for a in getattr(result, "actions", ()):  # the total after snapping / step rounding, both styles
        if isinstance(a, Stop):
            continue
        total = a.distance_m if isinstance(a, Forward) else abs(a.angle_rad)
        if reason := _bounded("forward" if isinstance(a, Forward) else "turn", total, max_forward_m, max_turn_rad):
            return _invalid(f"{reason} (from {_clip(text)})", text, "navila")
    return result


def parse_streamvln(text: str, max_actions: int = _DEFAULT.streamvln_max_actions) -> ParseResult:
    """StreamVLN arrows → up to ``max_actions`` of Forward(0.25) / Turn(±15°) / Stop, in order. Never raises."""
    if not isinstance(text, str):
        return _invalid(f"expected str, got {type(text).__name__}", text, "streamvln")
    if not isinstance(max_actions, int) or max_actions < 1:
        return _invalid(f"max_actions must be a positive int, got {max_actions!r}", text, "streamvln")
    tokens = _ARROWS.findall(text)
    if not tokens:
        return _invalid(f"no StreamVLN action (STOP ↑ ← →) in {_clip(text)}", text, "streamvln")
    notes = []
    if "STOP" in tokens:
        cut = tokens.index("STOP") + 1
        if cut < len(tokens):
            notes.append(f"{len(tokens) - cut} action(s) after STOP dropped")
        tokens = tokens[:cut]
    if len(tokens) > max_actions:
        notes.append(f"{len(tokens)} actions cut to the first {max_actions}")
        tokens = tokens[:max_actions]
    turn = math.radians(TURN_STEP_DEG)
    table: dict[str, Action] = {
        "↑": Forward(FORWARD_STEP_M, 1, "↑"),
        "←": Turn(turn, 1, "←"),
        "→": Turn(-turn, 1, "→"),
        "STOP": Stop("STOP"),
    }
    return Parsed(actions=tuple(table[t] for t in tokens), grammar="streamvln", raw=text, note="; ".join(notes))


class ActionParser:
    """THE parser of the stack: one configured style (config section `parser`) for every caller, so the VLM process
    counts an answer exactly as the navigator will execute it. Never raises.

    grammar: "navila" or "streamvln" (ActionText.grammar). source: who wrote the text; only a VLM answer must carry
    NaVILA's "The next action is" prefix (habitat style), an operator or a script may leave it out.
    """

    def __init__(self, cfg: ParserConfig):
        self.cfg = cfg

    def parse(self, text: str, grammar: str, source: str = "vlm") -> ParseResult:
        c = self.cfg
        if grammar == "navila":
            return parse_navila(
                text,
                style=c.navila_style,
                require_prefix=source == "vlm",
                max_forward_m=c.max_forward_m,
                max_turn_rad=c.max_turn_rad,
            )
        if grammar == "streamvln":
            return parse_streamvln(text, max_actions=c.streamvln_max_actions)
        return _invalid(f"unknown grammar {grammar!r} (navila | streamvln)", text, str(grammar))
