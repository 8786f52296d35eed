#!/usr/bin/env python3
"""Build every engine the robot needs, on the robot (Jetson Orin, JetPack 6): one command.

    python build_engines.py --config configs/engines.yaml            # build what is stale, verify, write manifests
    python build_engines.py --config configs/engines.yaml --dry-run  # print the plan only (no checkpoint needed)
    python build_engines.py --config configs/engines.yaml --plan [--module orin-nx-16]   # the memory plan
    python build_engines.py --config configs/engines.yaml --stage onnx      # on a workstation: the portable ONNX
    python build_engines.py --config configs/engines.yaml --stage engines   # on the Orin: TensorRT builds only

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
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from pydantic import Field

from edge.common.config import ConfigError, Frozen, load_yaml_model, resolve_path

# ---- configuration ----------------------------------------------------------------------------------------------


class PolicySpec(Frozen):
    source: str  # rsl_rl model_*.pt, TorchScript policy.jit, or ONNX (pkg:// allowed)
    contract: str | None = None  # policy YAML stored in the ONNX metadata
    activation: str = "elu"
    fp16: bool = True


class VlmSpec(Frozen):
    checkpoint: str  # NaVILA multi-folder or StreamVLN folder
    family: Literal["navila", "streamvln"] | None = None  # None: read from the checkpoint's layout
    frames: int | None = Field(None, ge=1)  # None: the family's default (NaVILA 8, StreamVLN 16)
    llm_route: Literal["int4_wo", "int4_awq"] = "int4_wo"
    max_new_tokens: int = Field(32, ge=1, le=1024)
    vision_max_batch: int = Field(8, ge=1, le=64)
    trtllm_root: str | None = None  # TensorRT-LLM source tree with examples/ (default $TRTLLM_ROOT)
    tllm_checkpoint: str | None = None  # a TensorRT-LLM checkpoint quantised elsewhere (AWQ on an x86 GPU host)

    def family_of(self) -> str:
        if self.family is not None:
            return self.family
        ckpt = resolve_path(self.checkpoint)
        if (ckpt / "llm").is_dir():
            return "navila"
        if (ckpt / "config.json").is_file():
            return "streamvln"
        raise ConfigError(
            f"vlm.family = None: the checkpoint {ckpt} is not there to tell; set vlm.family (navila | streamvln)"
        )


class BuildConfig(Frozen):
    output_dir: str = "build/engines"
    policy: PolicySpec | None = None
    vlm: VlmSpec | None = None


def load_build_config(path: str | Path) -> BuildConfig:
    """The engines config, validated at load: every error in one line naming the field, its value and the bound
    (`vlm.frames = -3: must be ≥ 1`, edge.common.config.describe_error). Raises ConfigError."""
    cfg = load_yaml_model(BuildConfig, path)
    if cfg.vlm is not None:
        from exporters.llm import FAMILIES

        family = cfg.vlm.family_of()
        least = FAMILIES[family]["frames"]
        if cfg.vlm.frames is not None and cfg.vlm.frames < least:
            raise ConfigError(
                f"{path}: vlm.frames = {cfg.vlm.frames}: a {family} query carries {least} frames (must be ≥ {least})"
            )
    return cfg


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


def toolchain_fingerprint(portable: bool = False) -> dict:
    """What an artifact depends on besides its inputs. Portable artifacts (ONNX) depend on the exporter only, so an
    ONNX exported on a workstation is up to date on the robot; engines also on TensorRT / GPU / L4T."""
    from engines.manifest import MachineInfo
    from engines.trt_runner import tensorrt_available
    from exporters import EXPORTER_VERSION

    if portable:
        return {"exporter": EXPORTER_VERSION}
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


Stage = Literal["onnx", "engines"]


@dataclass
class Step:
    name: str
    inputs: dict[str, Path]  # name → file or folder whose content is hashed
    options: dict
    plan: list[str]  # what will happen, for --dry-run and the log
    run: Callable[[Path], list[Row]]
    skipped: list[str] = field(default_factory=list)  # parts that cannot be built here, with the reason
    stage: Stage = "onnx"  # onnx: portable (a workstation may run it); engines: tied to this machine
    folder: str = ""  # output folder under output_dir (default: the step's name)

    @property
    def out(self) -> str:
        return self.folder or self.name


def _size(path: Path) -> str:
    return _size_of([path])


def _size_of(paths: list[Path]) -> str:
    n: float = sum(
        p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) for p in paths
    )
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _manifest_row(artifact: Path, label: str) -> Row:
    from engines.manifest import manifest_path_for, read_manifest

    m = read_manifest(manifest_path_for(artifact))
    extra = [r.resolve(artifact.parent) for r in m.extra_files]  # an ONNX's external data counts in its size
    parity = "-" if m.parity is None else f"{m.parity.max_abs_diff:.1e} {'ok' if m.parity.passed else 'FAIL'}"
    latency = "-" if m.latency is None else f"{m.latency.median_us / 1e3:.3f} ms p50 / {m.latency.p99_us / 1e3:.3f} p99"
    size = _size(artifact) if not extra else _size_of([artifact, *extra])
    return Row(label, m.backend, m.precision, parity, latency, size, manifest=str(manifest_path_for(artifact)))


def _engine_part(have_trt: bool, plan: list[str], artifact: str, detail: str) -> list[str]:
    """Add the TensorRT build of `artifact` to the plan, or return why it is skipped here."""
    if have_trt:
        plan.append(f"build {artifact} ({detail})")
        return []
    return [f"{artifact}: TensorRT is not installed on this machine (build on the Orin)"]


def policy_steps(spec: PolicySpec, have_trt: bool, out_root: Path) -> list[Step]:
    source = resolve_path(spec.source)
    inputs = {"source": source} | ({"contract": resolve_path(spec.contract)} if spec.contract else {})
    plan = [f"export {source.name} → policy.onnx (opset 17, IR ≤ 9, contract in metadata), parity on ONNX Runtime"]
    detail = f"{'FP16' if spec.fp16 else 'FP32'}, parity vs ONNX Runtime, CUDA graph"
    skipped = [] if have_trt else _engine_part(False, [], "policy.engine", detail)

    def run_onnx(out: Path) -> list[Row]:
        from exporters.policy import export_policy_onnx

        contract = None
        if spec.contract:
            from edge.controls.locomotion import load_policy_config

            contract = load_policy_config(spec.contract)
        res = export_policy_onnx(source, out / "policy.onnx", contract=contract, activation=spec.activation)
        return [_manifest_row(res.onnx, "policy.onnx")]

    steps = [Step("policy", inputs, spec.model_dump(), plan, run_onnx, skipped)]
    if have_trt:
        onnx = out_root / "policy" / "policy.onnx"
        eplan = [f"build policy.engine ({detail})"]

        def run_engine(out: Path) -> list[Row]:
            from exporters.policy import build_policy_engine

            mpath, _ = build_policy_engine(onnx, out / "policy.engine", source=source, fp16=spec.fp16)
            return [_manifest_row(out / "policy.engine", "policy.engine")]

        steps.append(
            Step(
                "policy_engine", {"onnx": onnx}, spec.model_dump(), eplan, run_engine, stage="engines", folder="policy"
            )
        )
    return steps


VISION_LATENCY_ITERATIONS = (5, 1)  # timed, warm-up: the ONNX Runtime per-frame figure for the table, not a benchmark


def vision_steps(spec: VlmSpec, have_trt: bool, out_root: Path) -> list[Step]:
    ckpt = resolve_path(spec.checkpoint)
    plan = [
        f"vision tower + projector of {ckpt.name} → vision.onnx (dynamic batch, 196 tokens/frame; one .onnx.data "
        "beyond 1 GiB of weights), parity vs PyTorch"
    ]
    detail = f"FP16, batch 1…{spec.vision_max_batch}"
    skipped = [] if have_trt else _engine_part(False, [], "vision.engine", detail)

    def run_onnx(out: Path) -> list[Row]:
        import numpy as np

        from engines.manifest import manifest_path_for, read_manifest, write_manifest
        from engines.ort_runner import OrtModel
        from exporters.policy import measure_latency
        from exporters.vision import export_vision

        res = export_vision(ckpt, out)
        model = OrtModel(res.onnx, threads=os.cpu_count() or 1)
        spec_in = model.inputs[0]
        feed = {spec_in.name: np.zeros((1, *spec_in.shape[1:]), np.float32)}
        mpath = manifest_path_for(res.onnx)  # latency per frame on ONNX Runtime, recorded in the manifest
        m = read_manifest(mpath)
        write_manifest(
            m.model_copy(update={"latency": measure_latency(model, feed, *VISION_LATENCY_ITERATIONS)}), mpath
        )
        return [_manifest_row(res.onnx, "vision.onnx")]

    steps = [Step("vision", {"checkpoint": ckpt}, spec.model_dump(), plan, run_onnx, skipped)]
    if have_trt:
        onnx = out_root / "vision" / "vision.onnx"

        def run_engine(out: Path) -> list[Row]:
            from exporters.vision import build_vision_engine

            engine = build_vision_engine(onnx, out / "vision.engine", max_batch=spec.vision_max_batch)
            return [_manifest_row(engine, "vision.engine")]

        steps.append(
            Step(
                "vision_engine",
                {"onnx": onnx},
                {"vision_max_batch": spec.vision_max_batch},
                [f"build vision.engine ({detail})"],
                run_engine,
                stage="engines",
                folder="vision",
            )
        )
    return steps


def llm_plan(spec: VlmSpec, out: Path, reference_if_missing: bool = False):
    """The TensorRT-LLM build plan for this config. A checkpoint that is not there yet is planned from the family's
    reference config when `reference_if_missing` (dry run, memory plan)."""
    from exporters.llm import plan_for

    ckpt_path = resolve_path(spec.checkpoint)
    family = spec.family_of()
    info: object = ckpt_path
    if (ckpt_path / "config.json").is_file() or (ckpt_path / "llm").is_dir():
        from engines.vlm.checkpoints import load_vlm_checkpoint

        info = load_vlm_checkpoint(ckpt_path)
    return plan_for(
        info,
        family=family,  # type: ignore[arg-type]
        route=spec.llm_route,
        frames=spec.frames,
        max_new_tokens=spec.max_new_tokens,
        trtllm_root=spec.trtllm_root,
        out_dir=out,
        tllm_checkpoint=resolve_path(spec.tllm_checkpoint) if spec.tllm_checkpoint else None,
        reference_if_missing=reference_if_missing,
    )


def llm_step(spec: VlmSpec, have_trtllm: bool, out: Path, dry_run: bool = False) -> Step:
    ckpt_path = resolve_path(spec.checkpoint)
    llm_plan_ = llm_plan(spec, out, reference_if_missing=dry_run)
    family = llm_plan_.family
    plan = [f"{family} LLM → TensorRT-LLM {spec.llm_route} (plan below)", *llm_plan_.render().splitlines()]
    skipped = (
        []
        if have_trtllm
        else [
            "llm engine: TensorRT-LLM is not installed on this machine; the transformers manifest is written instead "
            "(the VLM runs its LLM through transformers here)"
        ]
    )

    def run(out: Path) -> list[Row]:
        from engines.vlm.checkpoints import load_vlm_checkpoint
        from exporters.llm import run_plan

        if have_trtllm:
            from drivers.jetson import meminfo
            from exporters.memory_plan import fit_problem

            total = meminfo().get("MemTotal")
            problem = fit_problem(llm_plan_, spec.vision_max_batch, total) if total else None
            if problem:
                raise RuntimeError(f"refusing the LLM build: {problem}")
            run_plan(llm_plan_)
            engine_dir = Path(llm_plan_.engine_dir)
            write_llm_manifest(
                out / "llm.manifest.json", "tensorrt_llm", engine_dir, ckpt_path, llm_plan_, spec.llm_route
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
        ckpt = load_vlm_checkpoint(ckpt_path)
        latency, dtype = transformers_latency(ckpt)
        write_llm_manifest(
            out / "llm.manifest.json", "transformers", ckpt.llm_dir, ckpt_path, llm_plan_, dtype, latency
        )
        return [
            Row(
                "llm (transformers)",
                "transformers",
                dtype,
                "reference",
                f"{latency.median_us / 1e3:.1f} ms p50 / 8 tokens",
                _size(ckpt.llm_dir),
                "fallback",
                manifest=str(out / "llm.manifest.json"),
            )
        ]

    inputs = {"checkpoint": ckpt_path} | (
        {"tllm_checkpoint": resolve_path(spec.tllm_checkpoint)} if spec.tllm_checkpoint else {}
    )
    return Step("llm", inputs, spec.model_dump(), plan, run, skipped, stage="engines")


def transformers_latency(ckpt):
    """(median of a short greedy generation — one image, 8 new tokens — through the transformers generator, the
    dtype it ran in). StreamVLN's llava_qwen folder is loaded as its plain Qwen2 LLM (not a transformers type)."""
    import numpy as np

    from engines.manifest import LatencyResult
    from engines.vlm.generator import GenerationRequest, TransformersGenerator
    from engines.vlm.models import llm_for_transformers

    gen = TransformersGenerator(llm_for_transformers(ckpt))
    embeds = np.zeros((1, ckpt.tokens_per_frame, gen.hidden_size), np.float32)
    req = GenerationRequest(prompt_ids=[1, 2, -200, 3, 4], image_embeds=embeds, stop_ids=(-1,), max_new_tokens=8)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        gen.generate(req)
        times.append((time.perf_counter() - t) * 1e6)
    latency = LatencyResult(
        backend="transformers",
        median_us=float(np.median(times)),
        p99_us=float(np.percentile(times, 99)),
        iterations=len(times),
    )
    return latency, gen.dtype_name


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


def make_steps(cfg: BuildConfig, out_root: Path, dry_run: bool = False) -> list[Step]:
    from engines.trt_runner import tensorrt_available

    have_trt = tensorrt_available()
    have_trtllm = have_trt and _importable("tensorrt_llm")
    steps = []
    if cfg.policy:
        steps += policy_steps(cfg.policy, have_trt, out_root)
    if cfg.vlm:
        steps += vision_steps(cfg.vlm, have_trt, out_root)
        steps.append(llm_step(cfg.vlm, have_trtllm, out_root / "llm", dry_run))
    return steps


def _importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def digest(step: Step, hashes: HashCache, toolchain: dict) -> str:
    """Content hash of the step's inputs, options and toolchain; "missing: …" when an input is not there yet."""
    missing = [str(v) for v in step.inputs.values() if not v.exists()]
    if missing:
        return "missing: " + ", ".join(missing)
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


class BuildError(RuntimeError):
    """A build that cannot go on (an input missing for this stage); the message says what to do."""


def build(
    cfg: BuildConfig, dry_run: bool = False, force: bool = False, log=print, stage: Literal["all", Stage] = "all"
) -> list[Row]:
    """Build what is stale. stage "onnx": the portable steps only (a workstation: checkpoint → ONNX, then copy
    output_dir to the robot); "engines": the machine-bound steps only (the Orin: TensorRT from the copied ONNX);
    "all": both. A dry run prints the plan from the config alone (a checkpoint not downloaded yet included)."""
    out_root = resolve_path(cfg.output_dir)
    steps = make_steps(cfg, out_root, dry_run)
    hashes = HashCache(out_root / ".hash_cache.json")
    toolchains = {"onnx": toolchain_fingerprint(portable=True), "engines": toolchain_fingerprint()}
    log(f"output: {out_root}\ntoolchain: {json.dumps(toolchains['engines'])}\n")
    rows: list[Row] = []
    for step in steps:
        folder = out_root / step.out
        stamp_path = folder / ("build_stamp.json" if step.name == step.out else f"{step.name}.build_stamp.json")
        d = digest(step, hashes, toolchains[step.stage])
        stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
        fresh = not force and stamp.get("digest") == d and all(_still_valid(r) for r in stamp.get("rows", []))
        wanted = stage in ("all", step.stage)
        log(f"[{step.name}] {'up to date' if fresh else 'build' if wanted else f'not in stage {stage}'}")
        for line in step.plan:
            log(f"    {line}")
        for reason in step.skipped:
            log(f"    SKIP {reason}")
        if d.startswith("missing: "):
            log(f"    input {d}")
        if dry_run:
            continue
        if fresh:
            rows += [Row(**{**r, "status": "up to date"}) for r in stamp["rows"]]
            continue
        if not wanted:
            if stage == "engines":  # the ONNX must have been exported (on a workstation) and copied here
                raise BuildError(
                    f"{step.name}: its output in {folder} is missing or stale; run `build_engines.py --stage onnx` "
                    f"(on a workstation), copy {out_root} here, then `--stage engines`"
                )
            continue
        if d.startswith("missing: "):
            raise BuildError(f"{step.name}: input {d[len('missing: ') :]} not found")
        t0 = time.monotonic()
        folder.mkdir(parents=True, exist_ok=True)
        with Heartbeat(step.name):
            step_rows = step.run(folder)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB; the process's peak so far
        log(f"    done in {time.monotonic() - t0:.1f} s (peak RSS so far {peak:.2f} GiB)")
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


def print_memory_plan(cfg: BuildConfig, module: str | None, log=print) -> bool:
    """The memory plan of the config's VLM on one module (or all); True when it fits (every module: at least one)."""
    from exporters.memory_plan import GB, MODULES_GB, render, total_bytes

    if cfg.vlm is None:
        log("no vlm section: nothing to plan")
        return True
    plan = llm_plan(cfg.vlm, resolve_path(cfg.output_dir) / "llm", reference_if_missing=True)
    modules = [module] if module else None
    for note in plan.notes[:1]:
        log(f"note: {note}")
    log(render(plan, cfg.vlm.vision_max_batch, modules))
    need = total_bytes(plan, cfg.vlm.vision_max_batch)
    return any(need <= MODULES_GB[m] * GB for m in (modules or MODULES_GB))


def main(argv=None) -> int:
    from exporters.memory_plan import MODULES_GB

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/engines.yaml")
    ap.add_argument("--dry-run", action="store_true", help="print the plan, build nothing")
    ap.add_argument("--force", action="store_true", help="rebuild even what is up to date")
    ap.add_argument("--stage", choices=("all", "onnx", "engines"), default="all")
    ap.add_argument("--plan", action="store_true", help="print the memory plan and exit (1 if it does not fit)")
    ap.add_argument("--module", choices=sorted(MODULES_GB), help="with --plan: this Orin module only")
    args = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        cfg = load_build_config(args.config)
        if args.plan:
            return 0 if print_memory_plan(cfg, args.module) else 1
        build(cfg, dry_run=args.dry_run, force=args.force, stage=args.stage)
    except (ConfigError, BuildError) as e:
        print(f"build_engines: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a failed step: its message, not a traceback, ends the run
        from engines.vlm.checkpoints import CheckpointError
        from exporters.llm import PlanError

        if not isinstance(e, (CheckpointError, PlanError, FileNotFoundError, RuntimeError)):
            raise
        print(f"build_engines: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
