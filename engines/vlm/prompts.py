"""The NaVILA and StreamVLN prompt strings, byte-exact (docs/vln-models.md §1.5 and §2.3). The one place they live.

`<image>` marks where one frame's visual tokens go (tokenised as IMAGE_TOKEN_INDEX, see engines/vlm/generator.py).
"""

from __future__ import annotations

from typing import Literal

IMAGE = "<image>"

# --- NaVILA (llama_3 template, VILA `conversation.py` llama_3_chat) ---------------------------------------------------
NAVILA_SYSTEM = (
    "You are a helpful language and vision assistant. You are able to understand the visual content that "
    "the user provides, and assist the user with a variety of tasks using natural language."
)
NAVILA_STOP = "<|eot_id|>"


def navila_question(instruction: str, n_history: int = 7) -> str:
    """The user question: `n_history` history frames, then the current frame, then the raw instruction."""
    history = (IMAGE + "\n") * n_history
    return (
        "Imagine you are a robot programmed for navigation tasks. You have been given a video of historical "
        f'observations {history}, and current observation {IMAGE}\n. Your assigned task is: "{instruction}" '
        "Analyze this series of images to decide your next action, which could be turning left or right by a "
        "specific degree, moving forward a certain distance, or stop if the task is completed."
    )


def navila_prompt(instruction: str, n_history: int = 7) -> str:
    """Full llama_3 prompt incl. system prompt and the open assistant header (generation starts after it)."""
    return (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + NAVILA_SYSTEM + "<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n" + navila_question(instruction, n_history) + "<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


# --- StreamVLN (qwen_1_5 template as overridden in streamvln_agent.py `preprocess_qwen`) ------------------------------
MEMORY = "<memory>"
STREAMVLN_SYSTEM = "You are a helpful assistant."
STREAMVLN_STOP = "<|im_end|>"
STREAMVLN_TASK = (
    "You are an autonomous navigation assistant. Your task is to {instruction} Devise an action sequence "
    "to follow the instruction using the four actions: TURN LEFT (←) or TURN RIGHT (→) by 15 degrees, "
    "MOVE FORWARD (↑) by 25 centimeters, or STOP."
)
# Three released variants of the memory clause (eval / training / real-robot agent); pick one deliberately.
STREAMVLN_MEMORY_CLAUSES = {
    "eval": f" These are your historical observations {MEMORY}.",
    "train": f" These are your historical observations: {MEMORY}.",
    "real": f" You have visited these areas {MEMORY}.",
}


def _qwen_turn(role: str, content: str) -> str:
    return f"<|im_start|>{role}\n{content}<|im_end|>\n"


def streamvln_prompt(
    instruction: str | None = None,
    *,
    memory: bool = False,
    memory_clause: Literal["eval", "train", "real"] = "eval",
    conj: str = "you can see ",
) -> str:
    """One StreamVLN turn as text.

    With `instruction`: the first turn of a window (system message + task [+ memory clause] + observation).
    Without: a later turn of the window, `<|im_start|>user\\n{conj}<image>.<|im_end|>\\n` + empty assistant turn; the
    caller prepends the previous call's generated ids (incl. their final <|im_end|>) as ids, not text.
    `memory` adds the memory clause (window starts after the first); `<memory>` stands for 8 frames of visual tokens.
    The instruction replaces `<instruction>.` including its period, verbatim (not stripped, no period added), as the
    reference `.replace('<instruction>.', instruction_text)` does (docs/vln-models.md §2.3).
    Every turn ends with the empty assistant message `<|im_start|>assistant\\n<|im_end|>\\n` (no generation prompt).
    """
    empty_assistant = _qwen_turn("assistant", "")
    if instruction is None:
        if memory:
            raise ValueError("the memory clause belongs to the first turn of a window (pass the instruction)")
        return _qwen_turn("user", conj + IMAGE + ".") + empty_assistant
    content = STREAMVLN_TASK.format(instruction=instruction)
    if memory:
        content += STREAMVLN_MEMORY_CLAUSES[memory_clause]
    content += " " + conj + IMAGE + "."
    return _qwen_turn("system", STREAMVLN_SYSTEM) + _qwen_turn("user", content) + empty_assistant
