"""Vision encoders (SigLIP tower + projector as one module) and the exact frame preprocessing, at run time.

NaVILA:    SigLIP hidden_states[-2] (729 tokens) → DownSampleBlock (pad 27→28, fold 2×2, column-major over blocks)
           → LayerNorm(4·d_vis) → Linear → GELU → Linear                              → [B, 196, d_llm]
StreamVLN: SigLIP layer −2 (= last layer of LLaVA-NeXT's truncated tower) → Linear → GELU → Linear
           → 27×27 grid → bilinear resize to 14×14 (align_corners=False)             → [B, 196, d_llm]
Input [B, 3, 384, 384] float32 normalised to [-1, 1] → [B, 196, d_llm]. Exported to ONNX / TensorRT by exporters.vision.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engines.vlm.checkpoints import NavilaCheckpoint, StreamVlnCheckpoint, VisionInfo, load_vlm_checkpoint


def build_siglip(vision: VisionInfo, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """HF SiglipVisionModel with the stored number of layers, weights loaded strictly (transformers 4.x or 5.x)."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    cfg = SiglipVisionConfig(
        **{**vision.config, "num_hidden_layers": vision.stored_layers},
        vision_use_head=any(k.startswith("head.") for k in state_dict),
    )
    cfg._attn_implementation = "eager"  # plain MatMul/Softmax in ONNX, same math as the reference
    model = SiglipVisionModel(cfg)
    own = model.state_dict()
    prefix = "vision_model." if any(k.startswith("vision_model.") for k in own) else ""  # 4.x nests the transformer
    sd = {prefix + k: v for k, v in state_dict.items()}
    sd.update({k: v for k, v in own.items() if k.endswith("position_ids")})  # buffer, not always saved
    model.load_state_dict(sd, strict=True)
    return model.eval()


class DownSampleBlock(nn.Module):
    """VILA's 2×2 token merge. [B, 729, C] → [B, 196, 4C]. Out token k = 14·j + i (j column pair, i row pair),
    channels [t(2i,2j), t(2i,2j+1), t(2i+1,2j), t(2i+1,2j+1)], zeros where row or column = 27."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_side = math.isqrt(x.shape[1])
        c = x.shape[-1]
        x = x.reshape(-1, n_side, n_side, c)  # [B, row, col, C]
        pad = n_side % 2
        x = F.pad(x, (0, 0, 0, pad, 0, pad))  # zero column 27, then zero row 27
        s = n_side + pad
        x = x.reshape(-1, s, s // 2, 2 * c)  # pair columns: [t(r,2j), t(r,2j+1)]
        x = x.permute(0, 2, 1, 3)  # [B, j, row, 2C]
        x = x.reshape(-1, s // 2, s // 2, 4 * c)  # pair rows:    [.. t(2i,·) .., .. t(2i+1,·) ..]
        return x.reshape(-1, (s // 2) ** 2, 4 * c)  # k = (s/2)·j + i


class NavilaVisionEncoder(nn.Module):
    def __init__(self, ckpt: NavilaCheckpoint):
        super().__init__()
        v, d = ckpt.vision, ckpt.llm.hidden_size
        self.select_layer = v.select_layer
        self.tower = build_siglip(v, ckpt.vision_state_dict())
        self.projector = nn.Sequential(
            DownSampleBlock(),
            nn.LayerNorm(4 * v.hidden_size),
            nn.Linear(4 * v.hidden_size, d),
            nn.GELU(),
            nn.Linear(d, d),
        )
        self.projector.load_state_dict(
            {k.removeprefix("layers."): t for k, t in ckpt.projector_state_dict().items()}, strict=True
        )
        self.out_tokens, self.out_dim = ckpt.tokens_per_frame, d
        self.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.tower(x, output_hidden_states=True).hidden_states[self.select_layer]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.features(x))


class StreamVlnVisionEncoder(nn.Module):
    def __init__(self, ckpt: StreamVlnCheckpoint):
        super().__init__()
        v, d = ckpt.vision, ckpt.llm.hidden_size
        self.select_layer, self.grid = v.select_layer, v.grid
        self.pooled = math.ceil(v.grid / ckpt.pool_stride)  # get_2dPool: ceil(27 / 2) = 14
        self.tower = build_siglip(v, ckpt.vision_state_dict())
        self.projector = nn.Sequential(nn.Linear(v.hidden_size, d), nn.GELU(), nn.Linear(d, d))
        self.projector.load_state_dict(ckpt.projector_state_dict(), strict=True)
        self.out_tokens, self.out_dim = self.pooled**2, d
        self.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.tower(x, output_hidden_states=True).hidden_states[self.select_layer]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.projector(self.features(x))  # [B, 729, d]
        d = y.shape[-1]
        y = y.reshape(-1, self.grid, self.grid, d).permute(0, 3, 1, 2)
        y = F.interpolate(y, size=(self.pooled, self.pooled), mode="bilinear", align_corners=False)
        return y.permute(0, 2, 3, 1).reshape(-1, self.pooled**2, d)


def load_vision_encoder(path: str | Path | NavilaCheckpoint | StreamVlnCheckpoint) -> nn.Module:
    """Encoder for a checkpoint folder (either family) or an already-read checkpoint."""
    ckpt = path if isinstance(path, (NavilaCheckpoint, StreamVlnCheckpoint)) else load_vlm_checkpoint(path)
    return NavilaVisionEncoder(ckpt) if isinstance(ckpt, NavilaCheckpoint) else StreamVlnVisionEncoder(ckpt)


# ---------------------------------------------------------------------------------------------------- preprocessing
def preprocess_frames(
    images: list[np.ndarray],
    *,
    size: int = 384,
    mean: tuple[float, ...] = (0.5, 0.5, 0.5),
    std: tuple[float, ...] = (0.5, 0.5, 0.5),
    rescale: float = 1 / 255,
) -> np.ndarray:
    """RGB uint8 HxWx3 frames → [N, 3, size, size] float32: PIL bicubic squash to size×size, ×1/255, (x−mean)/std
    (NaVILA `process_image`, image_aspect_ratio "resize", + SiglipImageProcessor; StreamVLN's SigLipImageProcessor)."""
    from PIL import Image

    out = np.empty((len(images), 3, size, size), dtype=np.float32)
    m, s = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    for n, img in enumerate(images):
        a = np.asarray(img)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"frame {n}: expected an HxWx3 uint8 RGB array, got {a.dtype} {a.shape}")
        a = np.asarray(Image.fromarray(a).resize((size, size), Image.BICUBIC))
        x = (a.astype(np.float64) * rescale).astype(np.float32)  # HF rescale computes in float64
        out[n] = ((x - m) / s).transpose(2, 0, 1)
    return out
