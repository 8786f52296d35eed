"""Prompt strings byte-exact against docs/vln-models.md §1.5 (NaVILA) and §2.3 (StreamVLN), spelled out in full."""

from __future__ import annotations

import pytest

from engines.vlm.prompts import navila_prompt, navila_question, streamvln_prompt

INSTR = "Walk past the sofa and stop at the door."

NAVILA_EXPECTED = (
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
    "You are a helpful language and vision assistant. You are able to understand the visual content that the user "
    "provides, and assist the user with a variety of tasks using natural language.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n"
    "Imagine you are a robot programmed for navigation tasks. You have been given a video of historical observations "
    "<image>\n<image>\n<image>\n<image>\n<image>\n<image>\n<image>\n, and current observation <image>\n. "
    'Your assigned task is: "Walk past the sofa and stop at the door." Analyze this series of images to decide '
    "your next action, which could be turning left or right by a specific degree, moving forward a certain distance, "
    "or stop if the task is completed.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
)

STREAMVLN_TASK = (
    "You are an autonomous navigation assistant. Your task is to Walk past the sofa and stop at the "
    "door. Devise an action sequence to follow the instruction using the four actions: TURN LEFT (←) or TURN "
    "RIGHT (→) by 15 degrees, MOVE FORWARD (↑) by 25 centimeters, or STOP."
)


def test_navila_prompt_byte_exact():
    assert navila_prompt(INSTR) == NAVILA_EXPECTED
    assert navila_prompt(INSTR).encode("utf-8") == NAVILA_EXPECTED.encode("utf-8")


def test_navila_question_details():
    q = navila_question(INSTR)
    assert q.count("<image>") == 8
    assert "observations <image>\n" in q  # space before the history
    assert "<image>\n, and current observation <image>\n. Your" in q
    assert q.endswith("or stop if the task is completed.")
    assert navila_question("x", n_history=2).count("<image>") == 3


def test_streamvln_first_turn_byte_exact():
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n" + STREAMVLN_TASK + " you can see <image>.<|im_end|>\n"
        "<|im_start|>assistant\n<|im_end|>\n"
    )
    assert streamvln_prompt(INSTR) == expected


@pytest.mark.parametrize("instruction", ["walk to the red box", "  walk to the red box.  ", "Go.\nThen stop."])
def test_streamvln_instruction_verbatim(instruction):
    """The reference replaces `<instruction>.` (period included) with the raw text: nothing stripped or added."""
    content = streamvln_prompt(instruction).split("<|im_start|>user\n")[1]
    assert content.startswith("You are an autonomous navigation assistant. Your task is to " + instruction + " Devise")


@pytest.mark.parametrize(
    "variant,clause",
    [
        ("eval", " These are your historical observations <memory>."),
        ("train", " These are your historical observations: <memory>."),
        ("real", " You have visited these areas <memory>."),
    ],
)
def test_streamvln_memory_clause(variant, clause):
    expected = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n" + STREAMVLN_TASK + clause + " you can see <image>.<|im_end|>\n"
        "<|im_start|>assistant\n<|im_end|>\n"
    )
    assert streamvln_prompt(INSTR, memory=True, memory_clause=variant) == expected


def test_streamvln_later_turn_byte_exact():
    assert streamvln_prompt() == "<|im_start|>user\nyou can see <image>.<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n"
    assert streamvln_prompt(conj="there is ").startswith("<|im_start|>user\nthere is <image>.")
    with pytest.raises(ValueError):
        streamvln_prompt(memory=True)
