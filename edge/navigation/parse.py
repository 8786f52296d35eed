"""Language → typed actions. Pure functions, no I/O; parsing never raises on any `str`.

The rule: an answer moves the robot only when it clearly is a forward move, a turn or a stop. Anything else —
no action, a negation, another direction, a second action, an amount that cannot be read — is ``Invalid``, on which
the navigator stops and holds. Never a guess that moves the robot.

NaVILA answers (both styles) are read with one strict sentence grammar, after folding case and whitespace and
dropping a final "." or "!":

    [the] [next] action is ⟨action⟩          the prefix a VLM answer must carry (habitat style)
    ⟨action⟩ := move forward [by] [N ⟨cm | centimeter(s) | centimetre(s) | m | meter(s) | metre(s)⟩]
              | turn left|right [by] [N ⟨degree(s) | deg | °⟩]           N: digits, optionally with a decimal part

and a whole-word "stop" anywhere is Stop (as the references; a stop never moves the robot).

Reference behaviour kept (docs/vln-models.md §1.7, §2.4):
* habitat (`navila_trainer.py`): "stop" wins over everything; an amount that is not a multiple of 25 cm (15°) snaps
  to the nearest of {25, 50, 75} ({15, 30, 45}); multiples pass through; no amount → one 25 cm / 15° step. The
  reference executes value/step primitives; we return ONE action with the total (``steps`` keeps the count).
* isaac (`get_vel_command`): 75 / 50 / 25 cm and 45 / 30 / 15° → 1.5 / 1.0 / 0.5 s at 0.5 m/s or π/6 rad/s, i.e.
  0.75 / 0.5 / 0.25 m and 45 / 30 / 15°; no amount → 0.5 s; no "The next action is" needed.
* StreamVLN: ``re.findall("STOP|↑|←|→", text)`` → 25 cm / ±15° / STOP, in order.

Deviations (each gives ``Invalid`` unless it says otherwise; docs/vln-models.md §1.7 lists them):
* text with no action: the habitat reference falls through to STOP, the isaac one walks forward 0.5 s, StreamVLN
  maps it to STOP;
* isaac: substring tests are gone — "move backward 75 cm", "do not move", "remove the boxes" walked forward there;
  a bare "move" is not a direction; turn/move no longer win over a "stop" in the same text (it is Stop);
* habitat: the amount is read case-insensitively with its unit ("Move Forward 75 CM", "3 m", "1 degree" keep their
  amounts; the reference's case-sensitive regex fell back to 25 cm / 15°); an amount given but unreadable
  ("-75 cm", "75 inches", "seventy cm") no longer falls back to one step; 0 is refused (the reference ran a step);
* any words around the action other than the prefix and a final "." / "!" ("do not move forward 75 cm", "move
  forward 75 cm backwards", two actions in one answer);
* isaac: an amount other than 25 / 50 / 75 cm or 15 / 30 / 45° (the reference ran 0.5 s whatever it was);
* StreamVLN: any text besides the arrows, STOP and separators (spaces, commas, full stops);
* an amount above the bounds (default 3 m, 360°), judged on the number as stated and on the total after snapping;
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
    note: str = ""  # what the parser adjusted (snapping, unit conversion, truncation), human-readable

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

_STOP = re.compile(r"\bstop\b", re.IGNORECASE)
_PREFIX = re.compile(r"(?:the )?(?:next )?action is ")
_VERBS = (("move forward", "forward"), ("turn left", "left"), ("turn right", "right"))
_AMOUNT = re.compile(r"(?:by )?(\d+(?:\.\d+)?) ?([a-z°]+)")
_UNITS = {
    "forward": {
        **dict.fromkeys(("cm", "centimeter", "centimeters", "centimetre", "centimetres"), 1.0),
        **dict.fromkeys(("m", "meter", "meters", "metre", "metres"), 100.0),
    },
    "turn": dict.fromkeys(("degree", "degrees", "deg", "°"), 1.0),
}
_ISAAC_STEPS = {"forward": {25: 1, 50: 2, 75: 3}, "turn": {15: 1, 30: 2, 45: 3}}
_ARROWS = re.compile("STOP|↑|←|→")
_SEPARATORS = re.compile(r"[\s,.;]*")


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


def _make(kind: str, steps: int, text: str) -> Action:
    """kind in forward/left/right, a whole number of 25 cm / 15° steps."""
    if kind == "forward":
        return Forward(distance_m=steps * FORWARD_STEP_M, steps=steps, text=text)
    angle = math.radians(steps * TURN_STEP_DEG)
    return Turn(angle_rad=angle if kind == "left" else -angle, steps=steps, text=text)


def _sentence(text: str, require_prefix: bool) -> tuple[str, str] | str:
    """(verb kind, amount text) of a NaVILA sentence, or the reason it is not one."""
    norm = " ".join(text.split()).lower().rstrip(".!").rstrip()
    m = _PREFIX.match(norm)
    rest = norm[m.end() :] if m else norm
    if require_prefix and m is None:
        return f"a VLM answer must read 'The next action is …', got {_clip(text)}"
    for words, kind in _VERBS:
        if rest == words or rest.startswith(words + " "):
            return kind, rest[len(words) :].strip()
    return f"not a forward move, a turn or a stop: {_clip(text)}"


def _navila(text: str, style: str, require_prefix: bool, max_forward_m: float, max_turn_rad: float) -> ParseResult:
    if _STOP.search(text):
        return Parsed(actions=(Stop(text=text),), grammar="navila", raw=text)
    got = _sentence(text, require_prefix)
    if isinstance(got, str):
        return _invalid(got, text, "navila")
    kind, amount = got
    family = "forward" if kind == "forward" else "turn"
    unit_name, step, snaps = ("cm", 25, (25, 50, 75)) if family == "forward" else ("°", 15, (15, 30, 45))
    if not amount:  # the references' default: one step
        return Parsed(
            actions=(_make(kind, 1, text),), grammar="navila", raw=text, note=f"no amount: one {step}{unit_name} step"
        )
    m = _AMOUNT.fullmatch(amount)
    scale = _UNITS[family].get(m.group(2)) if m else None
    if m is None or scale is None:
        expected = "'75 cm' or '0.5 m'" if family == "forward" else "'30 degrees'"
        return _invalid(f"cannot read the amount {_clip(amount, 30)} (expected e.g. {expected})", text, "navila")
    value = float(m.group(1)) * scale  # cm or degrees
    if not math.isfinite(value) or value <= 0:
        return _invalid(f"the amount must be a positive finite number, got {_clip(amount, 30)}", text, "navila")
    stated = value / 100.0 if family == "forward" else math.radians(value)
    if reason := _bounded(family, stated, max_forward_m, max_turn_rad):
        return _invalid(f"{reason} (stated in {_clip(text)})", text, "navila")
    note = f"{m.group(1)} {m.group(2)} = {value:g} cm" if scale != 1.0 else ""
    if style == "isaac":
        steps = _ISAAC_STEPS[family].get(int(value)) if value == int(value) else None
        if steps is None:
            allowed = "25, 50 or 75 cm" if family == "forward" else "15, 30 or 45°"
            return _invalid(f"the isaac style runs {allowed} only, got {_clip(amount, 30)}", text, "navila")
        return Parsed(actions=(_make(kind, steps, text),), grammar="navila", raw=text, note=note)
    if value % step != 0:  # the habitat reference snaps to its action space
        snapped = min(snaps, key=lambda x: abs(x - value))
        note = "; ".join(filter(None, (note, f"{value:g}{unit_name} snapped to {snapped}{unit_name}")))
        value = snapped
    return Parsed(actions=(_make(kind, int(value // step), text),), grammar="navila", raw=text, note=note)


def parse_navila(
    text: str,
    style: str = "habitat",
    require_prefix: bool = True,
    max_forward_m: float = _DEFAULT.max_forward_m,
    max_turn_rad: float = _DEFAULT.max_turn_rad,
) -> ParseResult:
    """One NaVILA answer → ``Parsed`` with one Forward / Turn / Stop, or ``Invalid``. Never raises.

    style: "habitat" (`navila_trainer.py`: amounts snap to its action space) or "isaac" (`get_vel_command`: three
    durations per action). require_prefix: the answer must start "The next action is" (habitat style only; the isaac
    reference never needed it). Both read the strict grammar of the module docstring.
    """
    if not isinstance(text, str):
        return _invalid(f"expected str, got {type(text).__name__}", text, "navila")
    if style not in ("habitat", "isaac"):
        return _invalid(f"unknown NaVILA parser style {style!r} (habitat | isaac)", text, "navila")
    result = _navila(text, style, bool(require_prefix) and style == "habitat", max_forward_m, max_turn_rad)
    for a in getattr(result, "actions", ()):  # the total after snapping / step rounding
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
    rest = _ARROWS.sub("", text)
    if not _SEPARATORS.fullmatch(rest):
        return _invalid(f"text besides the StreamVLN actions (STOP ↑ ← →) in {_clip(text)}", text, "streamvln")
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
