"""The VLM a config names (vlm section), and the frames it takes. Used by the VLM process and the remote VLM server."""

from __future__ import annotations

from typing import Callable

import numpy as np

from edge.common.config import VlmConfig, resolve_path
from engines.vlm.models import FixedAnswerVlm, VisionLanguageModel, VlmFrame, load_vlm

MODEL_SIZE = 384  # the squash-resize of the model contract, done once per stored frame


def to_model_frame(frame_id: int, rgb: np.ndarray) -> VlmFrame:
    """Camera RGB → the 384×384 squash-resized frame the model sees (PIL bicubic, as the reference)."""
    from PIL import Image  # optional dependency (the export / sim extras): only when frames arrive

    if rgb.shape[:2] != (MODEL_SIZE, MODEL_SIZE):
        rgb = np.asarray(Image.fromarray(rgb).resize((MODEL_SIZE, MODEL_SIZE), Image.BICUBIC))
    return VlmFrame(frame_id, rgb)


def build_model(cfg: VlmConfig, progress: Callable[[str, float], None] | None = None) -> VisionLanguageModel:
    """progress(stage, fraction) before each loading stage (engines.vlm.models.load_vlm)."""
    if cfg.model == "fixed":
        return FixedAnswerVlm(cfg.fixed_answers or ["The next action is stop."], latency_s=cfg.fixed_latency_s)
    if not cfg.checkpoint:
        raise ValueError(f"vlm.checkpoint is required for model {cfg.model!r}")
    return load_vlm(
        resolve_path(cfg.checkpoint),
        vision_manifest=cfg.vision_manifest,
        generator_backend=cfg.generator_backend,
        engine_dir=cfg.engine_dir,
        trtllm_runner=cfg.trtllm_runner,
        progress=progress,
    )
