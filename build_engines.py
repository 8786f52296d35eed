#!/usr/bin/env python3
"""Build every engine the robot needs, on the robot (Jetson Orin, JetPack 6): one command.

    python build_engines.py --config configs/engines.yaml            # build what is stale, verify, write manifests
    python build_engines.py --config configs/engines.yaml --dry-run  # print the plan only

Artifacts: the locomotion policy (ONNX → TensorRT), the VLM vision encoder (ONNX → TensorRT FP16), the VLM's LLM
(TensorRT-LLM INT4 by TensorRT-LLM's own tools). Each is rebuilt only when the content hash of its inputs (source
files, options, exporter version, TensorRT / GPU on this machine) changed. Without TensorRT (a CPU machine) the
ONNX artifacts and their ONNX Runtime / transformers manifests are built and the rest is skipped with the reason.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from edge.common.config import Frozen, load_yaml_model, resolve_path

# ---- configuration ----------------------------------------------------------------------------------------------


class PolicySpec(Frozen):
    source: str  # rsl_rl model_*.pt, TorchScript policy.jit, or ONNX (pkg:// allowed)
    contract: str | None = None  # policy YAML stored in the ONNX metadata
    activation: str = "elu"
    fp16: bool = True


class VlmSpec(Frozen):
    checkpoint: str  # NaVILA multi-folder or StreamVLN folder
    frames: int | None = None  # None: the family's default (NaVILA 8)
    llm_route: Literal["int4_wo", "int4_awq"] = "int4_wo"
    max_new_tokens: int = 32
    vision_max_batch: int = 8
    trtllm_root: str | None = None  # TensorRT-LLM source tree with examples/ (default $TRTLLM_ROOT)


class BuildConfig(Frozen):
    output_dir: str = "build/engines"
    policy: PolicySpec | None = None
    vlm: VlmSpec | None = None


# ---- content hashes ---------------------------------------------------------------------------------------------


class HashCache:
    """sha256 of files and folders, cached by (path, size, mtime) so a re-run over a 16 GB checkpoint is instant."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, list] = json.loads(path.read_text()) if path.exists() else {}

    def file(self, p: Path) -> str:
        st = p.stat()
        key = str(p.resolve())
        hit = self.entries.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        from engines.manifest import sha256_file

        digest = sha256_file(p, chunk=1 << 22)
        self.entries[key] = [st.st_size, st.st_mtime_ns, digest]
        return digest

    def tree(self, p: Path) -> str:
        if p.is_file():
            return self.file(p)
        if not p.is_dir():
            raise FileNotFoundError(f"build input not found: {p}")
        h = hashlib.sha256()
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            h.update(f"{f.relative_to(p)}\0{self.file(f)}\n".encode())
        return h.hexdigest()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.entries))


def toolchain_fingerprint() -> dict:
    from engines.manifest import MachineInfo
    from engines.trt_runner import tensorrt_available
    from exporters import EXPORTER_VERSION

    m = MachineInfo.detect()
    return {
        "exporter": EXPORTER_VERSION,
        "tensorrt": m.tensorrt if tensorrt_available() else None,
        "tensorrt_llm": m.tensorrt_llm,
        "gpu_cc": m.compute_capability,
        "l4t": m.l4t,
    }


# ---- steps ------------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the summary table."""

    artifact: str
    backend: str
    precision: str = "-"
    parity: str = "-"
    latency: str = "-"
    size: str = "-"
    status: str = "built"
    manifest: str = ""  # the artifact's manifest: what "up to date" is checked against


@dataclass
class Step:
    name: str
    inputs: dict[str, Path]  # name → file or folder whose content is hashed
    options: dict
    plan: list[str]  # what will happen, for --dry-run and the log
    run: Callable[[Path], list[Row]]
    skipped: list[str] = field(default_factory=list)  # parts that cannot be built here, with the reason


def _size(path: Path) -> str:
    n = path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _manifest_row(artifact: Path, label: str) -> Row:
    from engines.manifest import manifest_path_for, read_manifest

    m = read_manifest(manifest_path_for(artifact))
    parity = "-" if m.parity is None else f"{m.parity.max_abs_diff:.1e} {'ok' if m.parity.passed else 'FAIL'}"
    latency = "-" if m.latency is None else f"{m.latency.median_us / 1e3:.3f} ms p50 / {m.latency.p99_us / 1e3:.3f} p99"
    return Row(
        label, m.backend, m.precision, parity, latency, _size(artifact), manifest=str(manifest_path_for(artifact))
    )


def _engine_part(have_trt: bool, plan: list[str], artifact: str, detail: str) -> list[str]:
    """Add the TensorRT build of `artifact` to the plan, or return why it is skipped here."""
    if have_trt:
        plan.append(f"build {artifact} ({detail})")
        return []
    return [f"{artifact}: TensorRT is not installed on this machine (build on the Orin)"]


def policy_step(spec: PolicySpec, have_trt: bool) -> Step:
    source = resolve_path(spec.source)
    inputs = {"source": source} | ({"contract": resolve_path(spec.contract)} if spec.contract else {})
    plan = [f"export {source.name} → policy.onnx (opset 17, IR ≤ 9, contract in metadata), parity on ONNX Runtime"]
    skipped = _engine_part(
        have_trt, plan, "policy.engine", f"{'FP16' if spec.fp16 else 'FP32'}, parity vs ONNX Runtime, CUDA graph"
    )

    def run(out: Path) -> list[Row]:
        from exporters.policy import export_policy

        contract = None
        if spec.contract:
            from edge.controls.locomotion import load_policy_config

            contract = load_policy_config(spec.contract)
        res = export_policy(
            source,
            out,
            contract=contract,
            activation=spec.activation,
            tensorrt="on" if have_trt else "off",
            fp16=spec.fp16,
        )
        rows = [_manifest_row(res.onnx, "policy.onnx")]
        if res.engine is not None:
            rows.append(_manifest_row(res.engine, "policy.engine"))
        return rows

    return Step("policy", inputs, spec.model_dump(), plan, run, skipped)


def vision_step(spec: VlmSpec, have_trt: bool) -> Step:
    ckpt = resolve_path(spec.checkpoint)
    plan = [
        f"vision tower + projector of {ckpt.name} → vision.onnx (dynamic batch, 196 tokens/frame), parity vs PyTorch"
    ]
    skipped = _engine_part(have_trt, plan, "vision.engine", f"FP16, batch 1…{spec.vision_max_batch}")

    def run(out: Path) -> list[Row]:
        from engines.manifest import manifest_path_for, read_manifest, write_manifest
        from engines.ort_runner import OrtModel
        from exporters.policy import measure_latency
        from exporters.vision import build_vision_engine, export_vision

        res = export_vision(ckpt, out)
        spec_in = OrtModel(res.onnx).inputs[0]
        import numpy as np

        feed = {spec_in.name: np.zeros((1, *spec_in.shape[1:]), np.float32)}
        mpath = manifest_path_for(res.onnx)  # latency per frame on ONNX Runtime, recorded in the manifest
        m = read_manifest(mpath)
        write_manifest(m.model_copy(update={"latency": measure_latency(OrtModel(res.onnx), feed, 50, 5)}), mpath)
        rows = [_manifest_row(res.onnx, "vision.onnx")]
        if have_trt:
            engine = build_vision_engine(res.onnx, out / "vision.engine", max_batch=spec.vision_max_batch)
            rows.append(_manifest_row(engine, "vision.engine"))
        return rows

    return Step("vision", {"checkpoint": ckpt}, spec.model_dump(), plan, run, skipped)


def llm_step(spec: VlmSpec, have_trtllm: bool, out: Path) -> Step:
    from engines.vlm.checkpoints import load_vlm_checkpoint
    from exporters.llm import plan_for

    ckpt_path = resolve_path(spec.checkpoint)
    ckpt = load_vlm_checkpoint(ckpt_path)
    family = "navila" if type(ckpt).__name__.startswith("Navila") else "streamvln"
    llm_plan = plan_for(
        ckpt,
        family=family,
        route=spec.llm_route,
        frames=spec.frames,
        max_new_tokens=spec.max_new_tokens,
        trtllm_root=spec.trtllm_root,
        out_dir=out,
    )
    plan = [f"{family} LLM → TensorRT-LLM {spec.llm_route} (plan below)", *llm_plan.render().splitlines()]
    skipped = (
        []
        if have_trtllm
        else [
            "llm engine: TensorRT-LLM is not installed on this machine; the transformers manifest is written instead "
            "(the VLM runs its LLM through transformers here)"
        ]
    )

    def run(out: Path) -> list[Row]:
        from exporters.llm import run_plan

        if have_trtllm:
            run_plan(llm_plan)
            engine_dir = Path(llm_plan.engine_dir)
            write_llm_manifest(
                out / "llm.manifest.json", "tensorrt_llm", engine_dir, ckpt_path, llm_plan, spec.llm_route
            )
            return [
                Row(
                    "llm (TensorRT-LLM)",
                    "tensorrt_llm",
                    spec.llm_route,
                    "-",
                    "-",
                    _size(engine_dir),
                    manifest=str(out / "llm.manifest.json"),
                )
            ]
        latency = transformers_latency(ckpt)
        write_llm_manifest(
            out / "llm.manifest.json", "transformers", ckpt.llm_dir, ckpt_path, llm_plan, _dtype(ckpt), latency
        )
        return [
            Row(
                "llm (transformers)",
                "transformers",
                _dtype(ckpt),
                "reference",
                f"{latency.median_us / 1e3:.1f} ms p50 / 8 tokens",
                _size(ckpt.llm_dir),
                "fallback",
                manifest=str(out / "llm.manifest.json"),
            )
        ]

    return Step("llm", {"checkpoint": ckpt_path}, spec.model_dump(), plan, run, skipped)


def _dtype(ckpt) -> str:
    cfg = json.loads((Path(ckpt.llm_dir) / "config.json").read_text())
    return str(cfg.get("torch_dtype") or cfg.get("dtype") or "fp32")


def transformers_latency(ckpt):
    """Median of a short greedy generation (one image, 8 new tokens) through the transformers generator."""
    import numpy as np

    from engines.manifest import LatencyResult
    from engines.vlm.generator import GenerationRequest, TransformersGenerator

    gen = TransformersGenerator(ckpt.llm_dir)
    embeds = np.zeros((1, ckpt.tokens_per_frame, gen.hidden_size), np.float32)
    req = GenerationRequest(prompt_ids=[1, 2, -200, 3, 4], image_embeds=embeds, stop_ids=(-1,), max_new_tokens=8)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        gen.generate(req)
        times.append((time.perf_counter() - t) * 1e6)
    return LatencyResult(
        backend="transformers",
        median_us=float(np.median(times)),
        p99_us=float(np.percentile(times, 99)),
        iterations=len(times),
    )


def write_llm_manifest(
    path: Path, backend: str, artifact: Path, source: Path, plan, precision: str, latency=None
) -> None:
    from engines.manifest import EngineManifest, FileRef, MachineInfo, write_manifest
    from exporters import EXPORTER_VERSION

    write_manifest(
        EngineManifest(
            kind="llm",
            backend=backend,
            artifact=FileRef.of(artifact, path.parent),
            source=FileRef.of(source, path.parent),
            exporter_version=EXPORTER_VERSION,
            built_on=MachineInfo.detect(),
            precision=precision,
            build_flags={"plan": plan.model_dump(mode="json")},
            latency=latency,
        ),
        path,
    )


# ---- driver -----------------------------------------------------------------------------------------------------


def make_steps(cfg: BuildConfig, out_root: Path) -> list[Step]:
    from engines.trt_runner import tensorrt_available

    have_trt = tensorrt_available()
    have_trtllm = have_trt and _importable("tensorrt_llm")
    steps = []
    if cfg.policy:
        steps.append(policy_step(cfg.policy, have_trt))
    if cfg.vlm:
        steps += [vision_step(cfg.vlm, have_trt), llm_step(cfg.vlm, have_trtllm, out_root / "llm")]
    return steps


def _importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def digest(step: Step, hashes: HashCache, toolchain: dict) -> str:
    payload = {
        "inputs": {k: hashes.tree(v) for k, v in step.inputs.items()},
        "options": step.options,
        "toolchain": toolchain,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class Heartbeat:
    """Prints elapsed time every `every_s` while a long step runs."""

    def __init__(self, name: str, every_s: float = 15.0):
        self.name, self.every_s, self.stop = name, every_s, threading.Event()
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self):
        while not self.stop.wait(self.every_s):
            print(f"  … {self.name}: {time.monotonic() - self.t0:.0f} s", flush=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()


def build(cfg: BuildConfig, dry_run: bool = False, force: bool = False, log=print) -> list[Row]:
    out_root = resolve_path(cfg.output_dir)
    steps = make_steps(cfg, out_root)
    hashes = HashCache(out_root / ".hash_cache.json")
    toolchain = toolchain_fingerprint()
    log(f"output: {out_root}\ntoolchain: {json.dumps(toolchain)}\n")
    rows: list[Row] = []
    for step in steps:
        stamp_path = out_root / step.name / "build_stamp.json"
        d = digest(step, hashes, toolchain)
        stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
        fresh = not force and stamp.get("digest") == d and all(_still_valid(r) for r in stamp.get("rows", []))
        log(f"[{step.name}] {'up to date' if fresh else 'build'}")
        for line in step.plan:
            log(f"    {line}")
        for reason in step.skipped:
            log(f"    SKIP {reason}")
        if dry_run:
            continue
        if fresh:
            rows += [Row(**{**r, "status": "up to date"}) for r in stamp["rows"]]
            continue
        t0 = time.monotonic()
        with Heartbeat(step.name):
            step_rows = step.run(out_root / step.name)
        log(f"    done in {time.monotonic() - t0:.1f} s")
        rows += step_rows
        stamp_path.write_text(json.dumps({"digest": d, "rows": [r.__dict__ for r in step_rows]}, indent=1))
    hashes.save()
    if not dry_run:
        log("\n" + format_table(rows))
        for step in steps:
            for reason in step.skipped:
                log(f"skipped: {reason}")
    return rows


def _still_valid(row: dict) -> bool:
    """The artifact behind a stamped row still exists, matches its manifest's hash and loads on this machine."""
    from engines.manifest import ManifestError, verify

    try:
        _, reasons = verify(row["manifest"])
    except (KeyError, OSError, ManifestError, ValueError):
        return False
    return not reasons


def format_table(rows: list[Row]) -> str:
    head = ("artifact", "backend", "precision", "parity (max |Δ|)", "latency", "size", "status")
    table = [head] + [(r.artifact, r.backend, r.precision, r.parity, r.latency, r.size, r.status) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in table]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/engines.yaml")
    ap.add_argument("--dry-run", action="store_true", help="print the plan, build nothing")
    ap.add_argument("--force", action="store_true", help="rebuild even what is up to date")
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cfg = load_yaml_model(BuildConfig, args.config)
    build(cfg, dry_run=args.dry_run, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
