"""Vision encoders (engines.vlm.vision) → ONNX → TensorRT FP16, parity-checked. ONNX input `input`
[B, 3, 384, 384] float32 → output `encoder_output` [B, 196, d_llm] (TensorRT-LLM multimodal names)."""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engines.manifest import EngineManifest, FileRef, MachineInfo, TensorInfo, manifest_path_for, write_manifest
from engines.ort_runner import OrtModel
from engines.runtime import TensorSpec
from engines.torch_runner import TorchModel
from engines.vlm.vision import NavilaVisionEncoder, load_vision_encoder
from exporters import EXPORTER_VERSION
from exporters.onnx_utils import (
    EXTERNAL_DATA_THRESHOLD,
    MAX_IR_VERSION,
    OPSET,
    external_data_path,
    save_onnx,
    write_metadata,
)
from exporters.parity import ParityReport, check_parity

INPUT_NAME, OUTPUT_NAME = "input", "encoder_output"  # TensorRT-LLM multimodal_builder's names
ONNX_TOLERANCE = 1e-4  # fp32 PyTorch vs ONNX Runtime: max |diff| / max |PyTorch output| (relative)


# ---------------------------------------------------------------------------------------------------- ONNX
def vision_metadata(encoder: nn.Module) -> dict[str, str]:
    return {
        "edge.exporter_version": EXPORTER_VERSION,
        "edge.family": _family(encoder),
        "edge.tokens_per_frame": str(encoder.out_tokens),
        "edge.hidden_size": str(encoder.out_dim),
        "edge.image_size": str(encoder.tower.config.image_size),
    }


def export_vision_onnx(
    encoder: nn.Module, path: str | Path, opset: int = OPSET, external_threshold: int = EXTERNAL_DATA_THRESHOLD
) -> Path:
    """ONNX with input `input` [batch, 3, S, S] → `encoder_output` [batch, 196, d], dynamic batch, IR ≤ 9.

    The exporter writes into a scratch folder (beyond 2 GiB the tracer leaves one file per tensor there); the model
    is then saved as `<path>` alone, or with one `<path>.data` when its weights exceed `external_threshold`, and the
    scratch folder is removed whatever happens."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = encoder.tower.config.image_size
    dummy = torch.zeros(2, 3, size, size)  # batch 2 so no size-1 dim gets specialised
    encoder.eval()
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as scratch:
        raw = os.path.join(scratch, "model.onnx")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy-exporter deprecation + tracer notes
            torch.onnx.export(
                encoder,
                (dummy,),
                raw,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        model = onnx.load(raw)  # external tensors (if any) are read from the scratch folder
    dims = model.graph.output[0].type.tensor_type.shape.dim  # the tracer leaves tokens/width symbolic
    dims[1].dim_value, dims[2].dim_value = encoder.out_tokens, encoder.out_dim
    write_metadata(model, vision_metadata(encoder))
    return save_onnx(model, path, MAX_IR_VERSION, external_threshold)


def _family(encoder: nn.Module) -> str:
    return "navila" if isinstance(encoder, NavilaVisionEncoder) else "streamvln"


def torch_reference(encoder: nn.Module) -> TorchModel:
    """The PyTorch encoder behind the TensorModel interface (same I/O names as the ONNX)."""
    size, f32 = encoder.tower.config.image_size, np.dtype(np.float32)
    return TorchModel(
        encoder,
        inputs=(TensorSpec(INPUT_NAME, ("batch", 3, size, size), f32),),
        outputs=(TensorSpec(OUTPUT_NAME, ("batch", encoder.out_tokens, encoder.out_dim), f32),),
        threads=None,
    )


def check_vision_parity(
    encoder: nn.Module,
    onnx_path: str | Path,
    batches: tuple[int, ...] = (1, 3),
    tolerance: float = ONNX_TOLERANCE,
    seed: int = 0,
) -> dict[int, ParityReport]:
    """ONNX Runtime vs PyTorch on seeded N(0, 1) inputs, one report per batch size; raises ParityError above
    `tolerance` (max abs diff)."""
    reference, candidate = torch_reference(encoder), OrtModel(onnx_path)
    reports = {
        b: check_parity(reference, candidate, n_random=1, seed=seed + b, batch=b, tolerance=tolerance, relative=True)
        for b in batches
    }
    for r in reports.values():
        r.gate()
    return reports


@dataclass(frozen=True)
class VisionExport:
    onnx: Path
    manifest: Path
    parity: dict[int, ParityReport]


def export_vision(
    checkpoint: str | Path,
    out_dir: str | Path,
    name: str = "vision",
    tolerance: float = ONNX_TOLERANCE,
    external_threshold: int = EXTERNAL_DATA_THRESHOLD,
) -> VisionExport:
    """Checkpoint folder (either family) → `<out_dir>/<name>.onnx` (+ `.onnx.data` when large) + manifest,
    parity-gated against PyTorch (relative to the output's magnitude; every frame compared is counted)."""
    encoder = load_vision_encoder(checkpoint)
    out_dir = Path(out_dir)
    onnx_path = export_vision_onnx(encoder, out_dir / f"{name}.onnx", external_threshold=external_threshold)
    reports = check_vision_parity(encoder, onnx_path, tolerance=tolerance)
    worst = ParityReport.merge(list(reports.values()))
    ort_model = OrtModel(onnx_path, threads=os.cpu_count() or 1)
    data = external_data_path(onnx_path)
    manifest = EngineManifest(
        kind="vision",
        backend="onnxruntime",
        artifact=FileRef.of(onnx_path, out_dir),
        source=FileRef.of(checkpoint, out_dir),
        exporter_version=EXPORTER_VERSION,
        built_on=MachineInfo.detect(),
        precision="fp32",
        inputs=[TensorInfo.from_spec(s) for s in ort_model.inputs],
        outputs=[TensorInfo.from_spec(s) for s in ort_model.outputs],
        build_flags={"opset": OPSET, "parity_batches": sorted(reports)},
        parity=worst.to_manifest(),
        metadata=vision_metadata(encoder),
        extra_files=[FileRef.of(data, out_dir)] if data.is_file() else [],
    )
    return VisionExport(onnx_path, write_manifest(manifest, manifest_path_for(onnx_path)), reports)


# ---------------------------------------------------------------------------------------------------- TensorRT
def build_vision_engine(
    onnx_path: str | Path, engine_path: str | Path, max_batch: int = 8, fp16: bool = True, workspace: int = 1 << 30
) -> Path:
    """TensorRT engine (10.3 on JetPack 6; 11 tolerated) with one profile on `input`: batch 1 / max/2 / max, as
    TensorRT-LLM's multimodal builder. Writes `<engine>.manifest.json` (ONNX Runtime fallback = the ONNX). Shapes and
    metadata come from the ONNX's manifest (a few KB), not from re-reading the ONNX."""
    from engines.manifest import read_manifest
    from engines.trt_runner import build_engine_from_onnx  # imports tensorrt lazily

    if max_batch < 1:
        raise ValueError(f"max_batch = {max_batch}: must be ≥ 1")
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    onnx_manifest = read_manifest(manifest_path_for(onnx_path))
    _, c, h, w = onnx_manifest.inputs[0].shape
    shapes = {INPUT_NAME: ((1, c, h, w), (max(1, max_batch // 2), c, h, w), (max_batch, c, h, w))}  # type: ignore
    built = build_engine_from_onnx(onnx_path, fp16=fp16, workspace=workspace, shapes=shapes)
    if fp16 and built.precision != "fp16":
        print(
            f"{onnx_path}: this TensorRT has no BuilderFlag.FP16 (TensorRT 11 is strongly typed) or no fast FP16; "
            "engine built in the ONNX's fp32 — convert the ONNX to FP16 first (ModelOpt AutoCast) for FP16",
            file=sys.stderr,
        )
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(built.plan)
    base = engine_path.parent
    manifest = EngineManifest(
        kind="vision",
        backend="tensorrt",
        artifact=FileRef.of(engine_path, base),
        source=FileRef.of(onnx_path, base),
        onnx=FileRef.of(onnx_path, base),
        exporter_version=EXPORTER_VERSION,
        built_on=MachineInfo.detect(),
        precision=built.precision,
        inputs=list(onnx_manifest.inputs),
        outputs=list(onnx_manifest.outputs),
        build_flags={**built.flags, "max_batch": max_batch},
        metadata=dict(onnx_manifest.metadata),
    )
    write_manifest(manifest, manifest_path_for(engine_path))
    return engine_path


__all__ = [
    "VisionExport",
    "build_vision_engine",
    "check_vision_parity",
    "export_vision",
    "export_vision_onnx",
    "torch_reference",
]


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m exporters.vision", description="VLM vision encoder → ONNX (+ TensorRT engine)"
    )
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
