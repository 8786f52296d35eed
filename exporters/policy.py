"""Policy exporter: rsl_rl checkpoint / TorchScript / ONNX → ONNX (opset 17, IR ≤ 9, contract in metadata)
→ TensorRT engine (FP16 where the platform allows; on the Orin itself) → parity gate, each with a manifest.

    python -m exporters.policy export SOURCE OUT_DIR [--contract configs/policies/go2_robot_lab.yaml]
                                      [--activation elu] [--tensorrt auto|on|off] [--recorded OBS.npz]
    python -m exporters.policy record-obs tests/artifacts/go2_policy_obs.npz [--seconds 6]
    python -m exporters.policy tiny OUT_DIR          # tiny rsl_rl + TorchScript checkpoints for tests

I/O: input `obs` (1, N) float32 → output `actions` (1, 12); batch fixed to 1 (the control loop's batch; TensorRT
then needs no optimization profile and the engine can run as a CUDA graph). `batch=None` exports a dynamic batch.
"""

from __future__ import annotations

import argparse
import copy
import logging
import re
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from engines.manifest import (
    EngineManifest,
    FileRef,
    LatencyResult,
    MachineInfo,
    TensorInfo,
    manifest_path_for,
    write_manifest,
)
from engines.ort_runner import OrtModel
from engines.runtime import TensorModel
from exporters import EXPORTER_VERSION
from exporters.onnx_utils import MAX_IR_VERSION, OPSET, load_onnx, read_metadata, rename_io, save_onnx, write_metadata
from exporters.parity import ParityReport, check_parity, feeds_from_rows

log = logging.getLogger(__name__)

CONTRACT_KEY = "edge.policy_contract"
ACTIVATIONS = ("elu", "selu", "relu", "lrelu", "tanh", "sigmoid", "identity")  # rsl_rl get_activation names
ONNX_TOLERANCE = 1e-4  # PyTorch vs ONNX Runtime, fp32 (512-wide layers, random N(0,1) obs: ≈6e-5)
ENGINE_TOLERANCE = 2e-2  # ONNX Runtime vs TensorRT (FP16, or TF32 on Ampere), in action units


class PolicySourceError(ValueError):
    """A policy source is missing, corrupted or not of the expected form; the message names the file."""


# --- sources ---------------------------------------------------------------------------------------------------------
def _activation(name: str):
    import torch.nn as nn

    table = {
        "elu": nn.ELU,
        "selu": nn.SELU,
        "relu": nn.ReLU,
        "lrelu": nn.LeakyReLU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "identity": nn.Identity,
    }
    if name not in table:
        raise ValueError(f"activation {name!r} unknown (known: {', '.join(ACTIVATIONS)})")
    return table[name]()


def _normalizer(mean, std, eps: float):
    import torch.nn as nn

    class ObsNormalizer(nn.Module):
        """rsl_rl EmpiricalNormalization at inference: (x − mean) / (std + eps)."""

        def __init__(self):
            super().__init__()
            self.register_buffer("mean", mean.reshape(1, -1).float().clone())
            self.register_buffer("std", std.reshape(1, -1).float().clone())
            self.eps = eps

        def forward(self, x):
            return (x - self.mean) / (self.std + self.eps)

    return ObsNormalizer()


def actor_from_rsl_rl(path: str | Path, activation: str = "elu", normalizer_eps: float = 1e-2):
    """nn.Sequential actor from an rsl_rl `model_*.pt` (`model_state_dict` actor.<i>.weight/bias; layer sizes from the
    weights), preceded by the observation normalizer when the checkpoint has one."""
    import torch
    import torch.nn as nn

    path = Path(path)
    if not path.is_file():
        raise PolicySourceError(f"rsl_rl checkpoint not found: {path}")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise PolicySourceError(
            f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    sd = ckpt.get("model_state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        found = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise PolicySourceError(
            f"{path}: expected an rsl_rl checkpoint with 'model_state_dict' holding "
            f"actor.<i>.weight/bias, found {found}"
        )
    idx = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"actor\.(\d+)\.weight", k)))
    if not idx:
        raise PolicySourceError(f"{path}: model_state_dict has no actor.<i>.weight keys (keys: {sorted(sd)[:8]}...)")
    layers: list = []
    prev_out = None
    for n, i in enumerate(idx):
        w, b = sd[f"actor.{i}.weight"], sd.get(f"actor.{i}.bias")
        if w.dim() != 2 or b is None or tuple(b.shape) != (w.shape[0],):
            raise PolicySourceError(
                f"{path}: actor.{i} is not a Linear layer (weight {tuple(w.shape)}, "
                f"bias {None if b is None else tuple(b.shape)})"
            )
        if prev_out is not None and w.shape[1] != prev_out:
            raise PolicySourceError(
                f"{path}: actor.{i}.weight expects {w.shape[1]} inputs, previous layer gives {prev_out}"
            )
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers += [lin] if n == len(idx) - 1 else [lin, _activation(activation)]
        prev_out = w.shape[0]
    norm = {k.split(".", 1)[1]: v for k, v in sd.items() if k.startswith("actor_obs_normalizer.")}  # rsl_rl ≥ 2.3
    norm = norm or (ckpt.get("obs_norm_state_dict") or {})  # rsl_rl 2.0–2.2
    if "_mean" in norm and "_std" in norm:
        layers.insert(0, _normalizer(norm["_mean"], norm["_std"], normalizer_eps))
    return nn.Sequential(*layers).eval()


def actor_from_onnx_mlp(path: str | Path):
    """nn.Sequential from an ONNX MLP made of Gemm and activation nodes (e.g. the robot_lab Go2 policy.onnx): a
    PyTorch / TorchScript twin with the same weights, for references and benchmarks."""
    import onnx.numpy_helper as nh
    import torch
    import torch.nn as nn

    model = load_onnx(path)
    inits = {t.name: nh.to_array(t) for t in model.graph.initializer}
    acts = {"Elu": nn.ELU, "Relu": nn.ReLU, "Tanh": nn.Tanh, "Sigmoid": nn.Sigmoid, "Selu": nn.SELU}
    layers = []
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Gemm":
            if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0):
                raise PolicySourceError(f"{path}: Gemm {node.name} with alpha/beta/transA is not a plain Linear")
            w = inits[node.input[1]] if attrs.get("transB", 0) else inits[node.input[1]].T
            lin = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.array(w, dtype=np.float32)))
                lin.bias.copy_(torch.from_numpy(np.array(inits[node.input[2]], dtype=np.float32)))
            layers.append(lin)
        elif node.op_type in acts:
            if node.op_type == "Elu" and attrs.get("alpha", 1.0) != 1.0:
                raise PolicySourceError(f"{path}: Elu alpha {attrs['alpha']} unsupported")
            layers.append(acts[node.op_type]())
        else:
            raise PolicySourceError(f"{path}: node {node.op_type} is not part of a plain MLP")
    return nn.Sequential(*layers).eval()


def save_torchscript(module, path: str | Path) -> Path:
    """torch.jit.script(module).save(path), without torch 2.x's TorchScript deprecation warning."""
    import torch

    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module.eval()).save(str(path))
    return path


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


def source_kind(path: str | Path) -> str:
    """'onnx' | 'torchscript' | 'rsl_rl', from the file's content (legged_gym's policy_1.pt is TorchScript)."""
    path = Path(path)
    if not path.is_file():
        raise PolicySourceError(f"policy source not found: {path}")
    if path.suffix == ".onnx":
        return "onnx"
    return "torchscript" if _is_torchscript(path) else "rsl_rl"


def load_policy_module(path: str | Path, activation: str = "elu"):
    """(kind, torch module or None for ONNX)."""
    import torch

    kind = source_kind(path)
    if kind == "onnx":
        return kind, None
    if kind == "torchscript":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return kind, torch.jit.load(str(path), map_location="cpu").eval()
        except RuntimeError as e:
            raise PolicySourceError(f"{path}: corrupted TorchScript file ({str(e).splitlines()[0]})") from None
    return kind, actor_from_rsl_rl(path, activation)


def _mlp_dims(module) -> tuple[int, int]:
    weights = [p for k, p in module.state_dict().items() if k.endswith("weight") and p.dim() == 2]
    if not weights:
        raise PolicySourceError("cannot infer the observation size: pass obs_dim")
    return int(weights[0].shape[1]), int(weights[-1].shape[0])


def load_contract(contract):
    """PolicyConfig from a PolicyConfig, a YAML path, or None."""
    if contract is None:
        return None
    from edge.controls.locomotion import PolicyConfig, load_policy_config

    return contract if isinstance(contract, PolicyConfig) else load_policy_config(contract)


def read_policy_contract(onnx_path: str | Path):
    """The PolicyConfig stored in an exported ONNX's metadata, or None."""
    from edge.controls.locomotion import PolicyConfig

    meta = read_metadata(onnx_path)
    return PolicyConfig.model_validate_json(meta[CONTRACT_KEY]) if CONTRACT_KEY in meta else None


# --- ONNX ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyExport:
    onnx: Path
    onnx_manifest: Path
    onnx_parity: ParityReport
    engine: Path | None = None
    engine_manifest: Path | None = None
    engine_parity: ParityReport | None = None


def measure_latency(
    model: TensorModel, feed: dict[str, np.ndarray], iterations: int = 500, warmup: int = 50
) -> LatencyResult:
    for _ in range(warmup):
        model.run(feed)
    t = np.empty(iterations)
    for i in range(iterations):
        t0 = time.perf_counter_ns()
        model.run(feed)
        t[i] = time.perf_counter_ns() - t0
    return LatencyResult(
        backend=model.backend,
        median_us=float(np.median(t) / 1e3),
        p99_us=float(np.percentile(t, 99) / 1e3),
        iterations=iterations,
        cuda_graph=bool(getattr(model, "cuda_graph", False)),
    )


def _load_recorded(recorded, obs_dim: int) -> np.ndarray | None:
    if recorded is None:
        return None
    rows = np.load(recorded)["obs"] if isinstance(recorded, (str, Path)) else np.asarray(recorded)
    if rows.ndim != 2 or rows.shape[1] != obs_dim:
        raise ValueError(f"recorded observations have shape {rows.shape}, the policy takes (N, {obs_dim})")
    return rows.astype(np.float32)


def export_policy_onnx(
    source: str | Path,
    out_path: str | Path,
    *,
    contract=None,
    activation: str = "elu",
    obs_dim: int | None = None,
    batch: int | None = 1,
    recorded=None,
    tolerance: float = ONNX_TOLERANCE,
    n_random: int = 64,
    seed: int = 0,
) -> PolicyExport:
    """Export to ONNX, verify it on ONNX Runtime against the source (PyTorch module, or the source ONNX on ORT) on
    seeded random and recorded observations, gate on `tolerance`, and write `<out>.manifest.json`."""
    import torch

    from edge.common.config import resolve_path
    from engines.torch_runner import TorchModel

    source, out_path = resolve_path(str(source), Path.cwd()), Path(out_path)
    cfg = load_contract(contract)
    in_name, out_name = (cfg.input, cfg.output) if cfg else ("obs", "actions")
    kind, module = load_policy_module(source, activation)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "onnx":
        model = load_onnx(source)
        g = model.graph
        if len(g.input) != 1 or len(g.output) != 1:
            raise PolicySourceError(
                f"{source}: a policy ONNX has one input and one output, found "
                f"{[i.name for i in g.input]} → {[o.name for o in g.output]}"
            )
        rename_io(model, {g.input[0].name: in_name, g.output[0].name: out_name})
        opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
        if opset > OPSET:
            log.warning("%s: opset %d > %d; TensorRT 10.3 may not parse it", source, opset, OPSET)
        reference: TensorModel = OrtModel(source)
    else:
        dims = _mlp_dims(module)
        obs_dim = obs_dim or dims[0]
        dummy = torch.zeros(1, obs_dim)
        try:
            with torch.inference_mode():
                module(dummy)
        except Exception as e:
            raise PolicySourceError(f"{source}: does not run on a (1, {obs_dim}) observation ({e})") from None
        dynamic = {in_name: {0: "batch"}, out_name: {0: "batch"}} if batch is None else None
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated (no onnxscript here)
            tmp_onnx = Path(tmp) / "policy.onnx"
            torch.onnx.export(
                module,
                (dummy,),
                str(tmp_onnx),
                input_names=[in_name],
                output_names=[out_name],
                opset_version=OPSET,
                dynamo=False,
                dynamic_axes=dynamic,
            )
            model = load_onnx(tmp_onnx)
        opset = OPSET
        reference = TorchModel(module, (in_name,), (out_name,))
    meta = {"edge.exporter_version": EXPORTER_VERSION, "edge.source": source.name, "edge.source_kind": kind}
    if kind == "rsl_rl":
        meta["edge.activation"] = activation
    if cfg is not None:
        meta[CONTRACT_KEY] = cfg.model_dump_json()
    write_metadata(model, meta)
    save_onnx(model, out_path, MAX_IR_VERSION)

    candidate = OrtModel(out_path)
    spec_in, spec_out = candidate.inputs[0], candidate.outputs[0]
    if cfg is not None:
        if spec_in.shape[-1] != cfg.obs_size or spec_out.shape[-1] != len(cfg.default_pose):
            raise ValueError(
                f"{source}: model maps {spec_in.shape[-1]} → {spec_out.shape[-1]}, contract "
                f"{cfg.name} needs {cfg.obs_size} → {len(cfg.default_pose)}"
            )
    rows = _load_recorded(recorded, int(spec_in.shape[-1]))
    report = check_parity(reference, candidate, n_random=n_random, seed=seed, recorded=rows, tolerance=tolerance)
    manifest = EngineManifest(
        backend="onnxruntime",
        artifact=FileRef.of(out_path, out_path.parent),
        source=FileRef.of(source, out_path.parent),
        exporter_version=EXPORTER_VERSION,
        built_on=MachineInfo.detect(),
        precision="fp32",
        inputs=[TensorInfo.from_spec(s) for s in candidate.inputs],
        outputs=[TensorInfo.from_spec(s) for s in candidate.outputs],
        build_flags={
            "opset": opset,
            "ir_version": int(model.ir_version),
            "batch": batch,
            "source_kind": kind,
            **({"activation": activation} if kind == "rsl_rl" else {}),
        },
        parity=report.to_manifest(),
        latency=measure_latency(candidate, feeds_from_rows(spec_in.name, np.zeros((1, spec_in.shape[-1])))[0]),
        metadata={k: v for k, v in meta.items() if k != CONTRACT_KEY},
    )
    mpath = write_manifest(manifest, manifest_path_for(out_path))
    report.gate()
    log.info("%s → %s: %s", source, out_path, report)
    return PolicyExport(out_path, mpath, report)


# --- TensorRT --------------------------------------------------------------------------------------------------------
def build_policy_engine(
    onnx_path: str | Path,
    engine_path: str | Path | None = None,
    *,
    source: str | Path | None = None,
    fp16: bool = True,
    workspace: int = 1 << 28,
    timing_cache: str | Path | None = None,
    cuda_graph: bool = True,
    recorded=None,
    tolerance: float = ENGINE_TOLERANCE,
    n_random: int = 256,
    seed: int = 0,
) -> tuple[Path, ParityReport]:
    """Build a TensorRT engine from the exported ONNX on this machine, check it against ONNX Runtime, measure its
    latency and write `<engine>.manifest.json` (parity recorded even when it fails; a failed gate then raises)."""
    from engines.trt_runner import TrtModel, build_engine_from_onnx

    onnx_path = Path(onnx_path)
    engine_path = Path(engine_path) if engine_path else onnx_path.with_suffix(".engine")
    built = build_engine_from_onnx(onnx_path, fp16=fp16, workspace=workspace, timing_cache=timing_cache)
    engine_path.write_bytes(built.plan)
    reference = OrtModel(onnx_path)
    candidate = TrtModel(engine_path, cuda_graph=cuda_graph)
    rows = _load_recorded(recorded, int(reference.inputs[0].shape[-1]))
    report = check_parity(reference, candidate, n_random=n_random, seed=seed, recorded=rows, tolerance=tolerance)
    feed = feeds_from_rows(candidate.inputs[0].name, np.zeros((1, reference.inputs[0].shape[-1])))[0]
    base = engine_path.parent
    manifest = EngineManifest(
        backend="tensorrt",
        artifact=FileRef.of(engine_path, base),
        source=FileRef.of(source or onnx_path, base),
        onnx=FileRef.of(onnx_path, base),
        exporter_version=EXPORTER_VERSION,
        built_on=MachineInfo.detect(),
        precision=built.precision,
        inputs=[TensorInfo.from_spec(s) for s in candidate.inputs],
        outputs=[TensorInfo.from_spec(s) for s in candidate.outputs],
        build_flags={**built.flags, "cuda_graph": candidate.cuda_graph},
        parity=report.to_manifest(),
        latency=measure_latency(candidate, feed),
        metadata=read_metadata(onnx_path),
    )
    mpath = write_manifest(manifest, manifest_path_for(engine_path))
    report.gate()
    return mpath, report


def export_policy(
    source: str | Path,
    out_dir: str | Path,
    *,
    name: str = "policy",
    contract=None,
    activation: str = "elu",
    tensorrt: str = "auto",
    recorded=None,
    fp16: bool = True,
    onnx_tolerance: float = ONNX_TOLERANCE,
    engine_tolerance: float = ENGINE_TOLERANCE,
) -> PolicyExport:
    """The whole chain. tensorrt: "auto" (build where TensorRT is installed), "on" (required), "off"."""
    out_dir = Path(out_dir)
    res = export_policy_onnx(
        source,
        out_dir / f"{name}.onnx",
        contract=contract,
        activation=activation,
        recorded=recorded,
        tolerance=onnx_tolerance,
    )
    from engines.trt_runner import tensorrt_available

    have_trt = tensorrt_available()
    if tensorrt == "off" or (tensorrt == "auto" and not have_trt):
        if tensorrt == "auto":
            log.info("TensorRT not installed: ONNX only (build the engine on the Orin)")
        return res
    mpath, report = build_policy_engine(
        res.onnx, out_dir / f"{name}.engine", source=source, fp16=fp16, recorded=recorded, tolerance=engine_tolerance
    )
    return PolicyExport(res.onnx, res.onnx_manifest, res.onnx_parity, out_dir / f"{name}.engine", mpath, report)


# --- tiny checkpoints and recorded observations ----------------------------------------------------------------------
def write_tiny_policy_checkpoints(
    out_dir: str | Path,
    obs_dim: int = 45,
    num_actions: int = 12,
    hidden: tuple[int, ...] = (32, 32, 16),
    activation: str = "elu",
    seed: int = 0,
) -> dict[str, Path]:
    """{"rsl_rl": model_100.pt, "torchscript": policy.jit} with the same actor weights (45-dim Go2 contract).

    model_100.pt is laid out as rsl_rl's OnPolicyRunner.save writes it: model_state_dict (actor.{0,2,4,6}.*,
    critic.*, std), optimizer_state_dict (Adam, after one step), iter, infos. policy.jit mirrors legged-loco's
    exported/policy.jit (an exporter module holding `actor` and an identity `normalizer`)."""
    import torch
    import torch.nn as nn

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)

    def mlp(n_out: int):
        dims, layers = (obs_dim, *hidden), []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), _activation(activation)]
        return nn.Sequential(*layers, nn.Linear(dims[-1], n_out))

    class ActorCritic(nn.Module):
        def __init__(self):
            super().__init__()
            self.actor, self.critic = mlp(num_actions), mlp(1)
            self.std = nn.Parameter(torch.ones(num_actions))

    ac = ActorCritic()
    opt = torch.optim.Adam(ac.parameters(), lr=1e-3)
    obs = torch.randn(8, obs_dim)
    (ac.actor(obs).pow(2).mean() + ac.critic(obs).pow(2).mean() + ac.std.sum()).backward()
    opt.step()
    opt.zero_grad()
    paths = {"rsl_rl": out_dir / "model_100.pt", "torchscript": out_dir / "policy.jit"}
    torch.save(
        {"model_state_dict": ac.state_dict(), "optimizer_state_dict": opt.state_dict(), "iter": 100, "infos": None},
        paths["rsl_rl"],
    )

    class PolicyExporter(nn.Module):
        def __init__(self, actor):
            super().__init__()
            self.actor = copy.deepcopy(actor)
            self.normalizer = nn.Identity()

        def forward(self, x):
            return self.actor(self.normalizer(x))

    save_torchscript(PolicyExporter(ac.actor), paths["torchscript"])
    return paths


def record_sim_observations(
    seconds: float = 6.0,
    seed: int = 0,
    policy_config="configs/policies/go2_robot_lab.yaml",
    command: tuple[float, float, float] = (0.5, 0.0, 0.3),
) -> np.ndarray:
    """Observations (N, obs) the real policy saw while the simulated Go2 stood up and walked (headless)."""
    from drivers.sim.go2_physics import Go2Sim
    from edge.common.config import ControlConfig, SafetyConfig, resolve_path
    from edge.controls.controller import Controller
    from edge.controls.locomotion import Policy
    from exporters.parity import RecordingModel

    cfg = load_contract(policy_config)
    rec = RecordingModel(OrtModel(resolve_path(cfg.model)))
    ctrl = Controller(control=ControlConfig(), safety=SafetyConfig(), policy=Policy(cfg, model=rec))
    sim = Go2Sim(start="standing", landmarks=False, seed=seed)
    dt = 1.0 / cfg.rate_hz
    substeps = max(1, round(dt / sim.model.opt.timestep))
    cmd = np.asarray(command, dtype=float)
    for i in range(int(seconds * cfg.rate_hz)):
        t = i * dt
        res = ctrl.tick(t, sim.state().to_robot_state(t), cmd, stand_requested=True)
        sim.set_command(res.command)
        sim.step(substeps)
    return rec.stacked(cfg.input).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m exporters.policy", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export")
    ex.add_argument("source")
    ex.add_argument("out_dir")
    ex.add_argument("--contract")
    ex.add_argument("--activation", default="elu", choices=ACTIVATIONS)
    ex.add_argument("--tensorrt", default="auto", choices=("auto", "on", "off"))
    ex.add_argument("--recorded")
    ex.add_argument("--no-fp16", action="store_true")
    rec = sub.add_parser("record-obs")
    rec.add_argument("out")
    rec.add_argument("--seconds", type=float, default=6.0)
    rec.add_argument("--seed", type=int, default=0)
    tiny = sub.add_parser("tiny")
    tiny.add_argument("out_dir")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if a.cmd == "export":
        r = export_policy(
            a.source,
            a.out_dir,
            contract=a.contract,
            activation=a.activation,
            tensorrt=a.tensorrt,
            recorded=a.recorded,
            fp16=not a.no_fp16,
        )
        print(r.onnx_parity)
        if r.engine_parity is not None:
            print(r.engine_parity)
    elif a.cmd == "record-obs":
        obs = record_sim_observations(a.seconds, a.seed)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(a.out, obs=obs)
        print(f"{a.out}: {obs.shape[0]} observations × {obs.shape[1]}")
    else:
        for k, p in write_tiny_policy_checkpoints(a.out_dir).items():
            print(f"{k}: {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
