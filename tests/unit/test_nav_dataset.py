"""Training samples follow the inference contract exactly: frame sampling, preprocessing path, prompt ids, image
rows, and head-camera frames equal to the stack's camera."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engines.vlm.generator import IMAGE_TOKEN_INDEX
from engines.vlm.models import VlmFrame, navila_sample, tokenize_with_images
from engines.vlm.prompts import navila_prompt
from training.dataset import ANSWERS, TOKENS_PER_FRAME, image_rows, sample_slots, used_observations


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 20, 57])
def test_sample_slots_are_navila_sample(n):
    obs = [100 + k for k in range(n)]
    frames = [VlmFrame(o, np.zeros((2, 2, 3), np.uint8)) for o in obs]
    want = [f.frame_id for f in navila_sample(frames[:-1], frames[-1])]
    assert sample_slots(obs, n - 1) == [0 if w == -1 else w for w in want]


def test_used_observations_cover_every_sampled_frame():
    queries = [0, 3, 5, 8, 11, 14, 17, 20, 23]
    used = set(used_observations(queries))
    for c in queries:
        assert {s - 1 for s in sample_slots([k + 1 for k in range(c + 1)], c) if s} <= used


def test_answers_are_the_ten_navila_actions_and_parse_back(tmp_path):
    """Each label is an expert sentence + <|eot_id|>; the stack's ActionParser reads it back as that action."""
    from training.dataset import PromptCodec
    from training.expert import Action, action_from_parsed, parse_answer
    from training.model import train_tokenizer
    from training.train import tokenizer_corpus

    vocab = [Action("forward", d) for d in (25, 50, 75)] + [Action("stop")]
    vocab += [Action(k, d) for k in ("left", "right") for d in (15, 30, 45)]
    assert sorted(ANSWERS) == sorted(a.text() for a in vocab)
    for a in vocab:
        assert action_from_parsed(parse_answer(a.text())) == a
    codec = PromptCodec(train_tokenizer(tokenizer_corpus(), tmp_path))
    for text, ids in zip(ANSWERS, codec.answer_ids):
        assert ids[-1] == codec.eot and codec.tok.decode(ids[:-1]) == text


def test_prompt_ids_and_image_rows(tmp_path):
    from training.dataset import PromptCodec
    from training.model import train_tokenizer
    from training.train import tokenizer_corpus

    tok = train_tokenizer(tokenizer_corpus(), tmp_path)
    codec = PromptCodec(tok)
    bos = tok.convert_tokens_to_ids("<|begin_of_text|>")
    a = codec.prompt("Walk to the red ball.")
    b = codec.prompt("Turn around, go through the doorway and stop at the purple pillar.")
    assert a[:2] == [bos, bos]  # NaVILA's double BOS
    assert a == tokenize_with_images(tok, navila_prompt("Walk to the red ball."))  # the stack's prompt, byte-exact
    assert codec.prompt("x", 0) == tokenize_with_images(tok, navila_prompt("x", 0))  # curriculum stage 1
    assert a.count(IMAGE_TOKEN_INDEX) == b.count(IMAGE_TOKEN_INDEX) == 8
    rows = image_rows(a)
    assert rows == image_rows(b) and len(rows) == 8 * TOKENS_PER_FRAME
    for word in ("red", "blue", "yellow", "cyan", "purple", "pink", "left", "right", "around", "doorway"):
        assert len(tok(" " + word, add_special_tokens=False).input_ids) == 1, word


def test_training_preprocessing_equals_the_vlm_process_path():
    """Training encodes the camera frame with one squash; the robot squashes in the VLM process
    (edge.vlm.model.to_model_frame) and NavilaVlm preprocesses the 384² frame again — the same tensor."""
    from edge.vlm.model import to_model_frame
    from engines.vlm.vision import preprocess_frames

    rgb = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    direct = preprocess_frames([rgb])
    via_vlmd = preprocess_frames([to_model_frame(0, rgb).rgb])
    assert np.array_equal(direct, via_vlmd)


def test_world_only_render_equals_the_stack_camera():
    """The dataset hides the robot's meshes (never in view); frames match SimHeadCamera's full render."""
    from drivers.sim.nav_world import generate_layout
    from training.render import LayoutRenderer, Pose, walking_jitter

    lay = generate_layout(7)
    rng = np.random.default_rng(1)
    with LayoutRenderer(lay) as r:
        for k in range(4):
            p = Pose(1.0 + 0.5 * k, lay.size[1] / 2, k * math.pi / 2)
            j = walking_jitter(rng)
            a, b = r.render(p, j, world_only=True), r.render(p, j, world_only=False)
            assert a.shape == (240, 320, 3)
            assert np.abs(a.astype(int) - b).max() <= 1
