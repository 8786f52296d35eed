"""Vision encoders (SigLIP tower + projector as one module) → ONNX → TensorRT, and the exact frame preprocessing.

NaVILA:    SigLIP hidden_states[-2] (729 tokens) → DownSampleBlock (pad 27→28, fold 2×2, column-major over blocks)
           → LayerNorm(4·d_vis) → Linear → GELU → Linear                              → [B, 196, d_llm]
StreamVLN: SigLIP layer −2 (= last layer of LLaVA-NeXT's truncated tower) → Linear → GELU → Linear
           → 27×27 grid → bilinear resize to 14×14 (align_corners=False)             → [B, 196, d_llm]
Input `input` [B, 3, 384, 384] float32 normalised to [-1, 1]; output `encoder_output` (TensorRT-LLM multimodal names).
"""
from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engines.manifest import EngineManifest, FileRef, MachineInfo, TensorInfo, manifest_path_for, write_manifest
from engines.runtime import OrtModel, TensorSpec
from engines.torch_runner import TorchModel
from exporters import EXPORTER_VERSION
from exporters.checkpoints import NavilaCheckpoint, StreamVlnCheckpoint, VisionInfo, load_vlm_checkpoint
from exporters.onnx_utils import MAX_IR_VERSION, OPSET, read_metadata, save_onnx, write_metadata
from exporters.parity import ParityReport, check_parity

INPUT_NAME, OUTPUT_NAME = "input", "encoder_output"      # TensorRT-LLM multimodal_builder's names
ONNX_TOLERANCE = 1e-4                                     # fp32 PyTorch vs ONNX Runtime, max abs diff


def build_siglip(vision: VisionInfo, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """HF SiglipVisionModel with the stored number of layers, weights loaded strictly (transformers 4.x or 5.x)."""
    from transformers import SiglipVisionConfig, SiglipVisionModel
    cfg = SiglipVisionConfig(**{**vision.config, "num_hidden_layers": vision.stored_layers},
                             vision_use_head=any(k.startswith("head.") for k in state_dict))
    cfg._attn_implementation = "eager"                       # plain MatMul/Softmax in ONNX, same math as the reference
    model = SiglipVisionModel(cfg)
    own = model.state_dict()
    prefix = "vision_model." if any(k.startswith("vision_model.") for k in own) else ""   # 4.x nests the transformer
    sd = {prefix + k: v for k, v in state_dict.items()}
    sd.update({k: v for k, v in own.items() if k.endswith("position_ids")})              # buffer, not always saved
    model.load_state_dict(sd, strict=True)
    return model.eval()


class DownSampleBlock(nn.Module):
    """VILA's 2×2 token merge. [B, 729, C] → [B, 196, 4C]. Out token k = 14·j + i (j column pair, i row pair),
    channels [t(2i,2j), t(2i,2j+1), t(2i+1,2j), t(2i+1,2j+1)], zeros where row or column = 27."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_side = math.isqrt(x.shape[1])
        c = x.shape[-1]
        x = x.reshape(-1, n_side, n_side, c)                  # [B, row, col, C]
        pad = n_side % 2
        x = F.pad(x, (0, 0, 0, pad, 0, pad))                  # zero column 27, then zero row 27
        s = n_side + pad
        x = x.reshape(-1, s, s // 2, 2 * c)                   # pair columns: [t(r,2j), t(r,2j+1)]
        x = x.permute(0, 2, 1, 3)                             # [B, j, row, 2C]
        x = x.reshape(-1, s // 2, s // 2, 4 * c)              # pair rows:    [.. t(2i,·) .., .. t(2i+1,·) ..]
        return x.reshape(-1, (s // 2) ** 2, 4 * c)            # k = (s/2)·j + i


class NavilaVisionEncoder(nn.Module):
    def __init__(self, ckpt: NavilaCheckpoint):
        super().__init__()
        v, d = ckpt.vision, ckpt.llm.hidden_size
        self.select_layer = v.select_layer
        self.tower = build_siglip(v, ckpt.vision_state_dict())
        self.projector = nn.Sequential(DownSampleBlock(), nn.LayerNorm(4 * v.hidden_size),
                                       nn.Linear(4 * v.hidden_size, d), nn.GELU(), nn.Linear(d, d))
        self.projector.load_state_dict({k.removeprefix("layers."): t for k, t in ckpt.projector_state_dict().items()},
                                       strict=True)
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
        self.pooled = math.ceil(v.grid / ckpt.pool_stride)    # get_2dPool: ceil(27 / 2) = 14
        self.tower = build_siglip(v, ckpt.vision_state_dict())
        self.projector = nn.Sequential(nn.Linear(v.hidden_size, d), nn.GELU(), nn.Linear(d, d))
        self.projector.load_state_dict(ckpt.projector_state_dict(), strict=True)
        self.out_tokens, self.out_dim = self.pooled ** 2, d
        self.eval()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.tower(x, output_hidden_states=True).hidden_states[self.select_layer]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.projector(self.features(x))                  # [B, 729, d]
        d = y.shape[-1]
        y = y.reshape(-1, self.grid, self.grid, d).permute(0, 3, 1, 2)
        y = F.interpolate(y, size=(self.pooled, self.pooled), mode="bilinear", align_corners=False)
        return y.permute(0, 2, 3, 1).reshape(-1, self.pooled ** 2, d)


def load_vision_encoder(path: str | Path | NavilaCheckpoint | StreamVlnCheckpoint) -> nn.Module:
    """Encoder for a checkpoint folder (either family) or an already-read checkpoint."""
    ckpt = path if isinstance(path, (NavilaCheckpoint, StreamVlnCheckpoint)) else load_vlm_checkpoint(path)
    return NavilaVisionEncoder(ckpt) if isinstance(ckpt, NavilaCheckpoint) else StreamVlnVisionEncoder(ckpt)


# ---------------------------------------------------------------------------------------------------- preprocessing
def preprocess_frames(images: list[np.ndarray], *, size: int = 384, mean: tuple[float, ...] = (0.5, 0.5, 0.5),
                      std: tuple[float, ...] = (0.5, 0.5, 0.5), rescale: float = 1 / 255) -> np.ndarray:
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
        x = (a.astype(np.float64) * rescale).astype(np.float32)    # HF rescale computes in float64
        out[n] = ((x - m) / s).transpose(2, 0, 1)
    return out


# ---------------------------------------------------------------------------------------------------- ONNX
def export_vision_onnx(encoder: nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    """ONNX with input `input` [batch, 3, S, S] → `encoder_output` [batch, 196, d], dynamic batch, IR ≤ 9."""
    import onnx
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = encoder.tower.config.image_size
    dummy = torch.zeros(2, 3, size, size)                     # batch 2 so no size-1 dim gets specialised
    encoder.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")                       # legacy-exporter deprecation + tracer notes
        torch.onnx.export(encoder, (dummy,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, opset_version=opset,
                          do_constant_folding=True, dynamo=False)
    model = onnx.load(str(path), load_external_data=False)
    dims = model.graph.output[0].type.tensor_type.shape.dim   # the tracer leaves tokens/width symbolic
    dims[1].dim_value, dims[2].dim_value = encoder.out_tokens, encoder.out_dim
    write_metadata(model, {"edge.exporter_version": EXPORTER_VERSION, "edge.family": _family(encoder),
                           "edge.tokens_per_frame": encoder.out_tokens, "edge.hidden_size": encoder.out_dim,
                           "edge.image_size": size})
    return save_onnx(model, path, MAX_IR_VERSION)


def _family(encoder: nn.Module) -> str:
    return "navila" if isinstance(encoder, NavilaVisionEncoder) else "streamvln"


def torch_reference(encoder: nn.Module) -> TorchModel:
    """The PyTorch encoder behind the TensorModel interface (same I/O names as the ONNX)."""
    size, f32 = encoder.tower.config.image_size, np.dtype(np.float32)
    return TorchModel(encoder, inputs=(TensorSpec(INPUT_NAME, ("batch", 3, size, size), f32),),
                      outputs=(TensorSpec(OUTPUT_NAME, ("batch", encoder.out_tokens, encoder.out_dim), f32),),
                      threads=None)


def check_vision_parity(encoder: nn.Module, onnx_path: str | Path, batches: tuple[int, ...] = (1, 3),
                        tolerance: float = ONNX_TOLERANCE, seed: int = 0) -> dict[int, ParityReport]:
    """ONNX Runtime vs PyTorch on seeded N(0, 1) inputs, one report per batch size; raises ParityError above
    `tolerance` (max abs diff)."""
    reference, candidate = torch_reference(encoder), OrtModel(onnx_path)
    reports = {b: check_parity(reference, candidate, n_random=1, seed=seed + b, batch=b, tolerance=tolerance)
               for b in batches}
    for r in reports.values():
        r.gate()
    return reports


@dataclass(frozen=True)
class VisionExport:
    onnx: Path
    manifest: Path
    parity: dict[int, ParityReport]


def export_vision(checkpoint: str | Path, out_dir: str | Path, name: str = "vision",
                  tolerance: float = ONNX_TOLERANCE) -> VisionExport:
    """Checkpoint folder (either family) → `<out_dir>/<name>.onnx` + manifest, parity-gated against PyTorch."""
    encoder = load_vision_encoder(checkpoint)
    out_dir = Path(out_dir)
    onnx_path = export_vision_onnx(encoder, out_dir / f"{name}.onnx")
    reports = check_vision_parity(encoder, onnx_path, tolerance=tolerance)
    worst = max(reports.values(), key=lambda r: r.max_abs_diff)
    ort_model = OrtModel(onnx_path)
    manifest = EngineManifest(
        kind="vision", backend="onnxruntime", artifact=FileRef.of(onnx_path, out_dir),
        source=FileRef.of(checkpoint, out_dir), exporter_version=EXPORTER_VERSION, built_on=MachineInfo.detect(),
        precision="fp32", inputs=[TensorInfo.from_spec(s) for s in ort_model.inputs],
        outputs=[TensorInfo.from_spec(s) for s in ort_model.outputs],
        build_flags={"opset": OPSET, "parity_batches": sorted(reports)}, parity=worst.to_manifest(),
        metadata=read_metadata(onnx_path))
    return VisionExport(onnx_path, write_manifest(manifest, manifest_path_for(onnx_path)), reports)


# ---------------------------------------------------------------------------------------------------- TensorRT
def build_vision_engine(onnx_path: str | Path, engine_path: str | Path, max_batch: int = 8, fp16: bool = True,
                        workspace: int = 1 << 30) -> Path:
    """TensorRT engine (10.3 on JetPack 6; 11 tolerated) with one profile on `input`: batch 1 / max/2 / max, as
    TensorRT-LLM's multimodal builder. Writes `<engine>.manifest.json` (ONNX Runtime fallback = the ONNX)."""
    from engines.trt_runner import build_engine_from_onnx      # imports tensorrt lazily

    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    spec = OrtModel(onnx_path)
    _, c, h, w = spec.inputs[0].shape
    shapes = {INPUT_NAME: ((1, c, h, w), (max(1, max_batch // 2), c, h, w), (max_batch, c, h, w))}
    built = build_engine_from_onnx(onnx_path, fp16=fp16, workspace=workspace, shapes=shapes)
    if fp16 and built.precision != "fp16":
        print(f"{onnx_path}: this TensorRT has no BuilderFlag.FP16 (TensorRT 11 is strongly typed) or no fast FP16; "
              "engine built in the ONNX's fp32 — convert the ONNX to FP16 first (ModelOpt AutoCast) for FP16",
              file=sys.stderr)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(built.plan)
    base = engine_path.parent
    manifest = EngineManifest(
        kind="vision", backend="tensorrt", artifact=FileRef.of(engine_path, base), source=FileRef.of(onnx_path, base),
        onnx=FileRef.of(onnx_path, base), exporter_version=EXPORTER_VERSION, built_on=MachineInfo.detect(),
        precision=built.precision, inputs=[TensorInfo.from_spec(s) for s in spec.inputs],
        outputs=[TensorInfo.from_spec(s) for s in spec.outputs], build_flags={**built.flags, "max_batch": max_batch},
        metadata=read_metadata(onnx_path))
    write_manifest(manifest, manifest_path_for(engine_path))
    return engine_path


__all__ = ["DownSampleBlock", "NavilaVisionEncoder", "StreamVlnVisionEncoder", "VisionExport", "build_siglip",
           "build_vision_engine", "check_vision_parity", "export_vision", "export_vision_onnx", "load_vision_encoder",
           "preprocess_frames", "torch_reference"]


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m exporters.vision",
                                 description="VLM vision encoder → ONNX (+ TensorRT engine)")
    ap.add_argument("checkpoint", help="NaVILA (llm/ vision_tower/ mm_projector/) or StreamVLN checkpoint folder")
    ap.add_argument("out_dir")
    ap.add_argument("--name", default="vision")
    ap.add_argument("--engine", action="store_true", help="also build a TensorRT engine (needs TensorRT + GPU)")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--fp32", action="store_true", help="no FP16 flag for the engine")
    args = ap.parse_args(argv)
    res = export_vision(args.checkpoint, args.out_dir, args.name)
    print(f"{res.onnx}  ({res.onnx.stat().st_size / 1e6:.1f} MB)")
    for b, r in res.parity.items():
        print(f"  batch {b}: {r}")
    if args.engine:
        eng = build_vision_engine(res.onnx, res.onnx.with_suffix(".engine"), args.max_batch, fp16=not args.fp32)
        print(f"{eng}  ({eng.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
