"""The contract drifts of the offline evaluation are the drifts they claim to be."""

from __future__ import annotations

import torch

from engines.vlm.vision import DownSampleBlock
from training.evaluate import RowMajorDownSample


def _patch_ids() -> torch.Tensor:
    """[1, 729, 1]: each patch carries its own index + 1 (0 stays for the zero padding)."""
    return (torch.arange(729, dtype=torch.float32) + 1).reshape(1, 729, 1)


def test_navila_fold_is_column_major():
    out = DownSampleBlock()(_patch_ids())[0] - 1  # [196, 4]; padding → −1
    assert out[0].tolist() == [0, 1, 27, 28]
    assert out[1].tolist() == [54, 55, 81, 82]  # next row pair, same column pair
    assert out[14].tolist() == [2, 3, 29, 30]  # next column pair


def test_drifted_fold_is_row_major_with_the_same_blocks():
    ref = DownSampleBlock()(_patch_ids())[0]
    out = RowMajorDownSample()(_patch_ids())[0]
    assert (out - 1)[1].tolist() == [2, 3, 29, 30]  # k = 14·i + j
    for i in range(14):
        for j in range(14):
            assert torch.equal(out[14 * i + j], ref[14 * j + i])


def test_checkpoint_digest_covers_what_the_readers_load(tmp_path):
    """The evaluation record's digest changes with any weight, config or tokenizer file, not with training notes."""
    import shutil
    from pathlib import Path

    from training.evaluate import checkpoint_digest

    ckpt = tmp_path / "ckpt"
    shutil.copytree(Path(__file__).parents[2] / "models" / "nav10", ckpt)
    base = checkpoint_digest(ckpt)
    (ckpt / "training_record.json").write_text("{}")
    (ckpt / "offline_eval.json").write_text("{}")
    assert checkpoint_digest(ckpt) == base
    readers_load = (
        "config.json",
        "llm/tokenizer.json",
        "vision_tower/preprocessor_config.json",
        "mm_projector/config.json",
    )
    for rel in readers_load:
        f = ckpt / rel
        original = f.read_bytes()
        f.write_bytes(original + b" ")
        assert checkpoint_digest(ckpt) != base, rel
        f.write_bytes(original)
    assert checkpoint_digest(ckpt) == base
