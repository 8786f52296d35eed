"""Memory plan: what the VLM engines and the rest of the robot stack need on each Orin module, with the arithmetic.

Jetson CPU and GPU share one LPDDR5 pool, so every item below comes out of the module's RAM (docs/jetson.md §5):
INT4 LLM weights (body at 0.5 B/param + FP16 group scales, embedding and lm_head in FP16), the KV cache at the
planned sequence length, the vision engine's FP16 weights, the TensorRT workspace, the CUDA context and kernel images,
the Python ModelRunner's host copy of the engine, the rest of the stack and the OS. Estimated items say so.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporters.llm import LlmBuildPlan, LlmConfigSummary

GIB = 1 << 30
GB = 10**9
# Module RAM (NVIDIA Jetson Orin datasheets, docs/jetson.md §5), GB as sold.
MODULES_GB = {"agx-orin-64": 64, "agx-orin-32": 32, "orin-nx-16": 16, "orin-nx-8": 8, "orin-nano-8": 8}
OS_RESERVE = int(2.0 * GB)  # OS, drivers, carve-outs: "≈1.5–2 GB before inference" on an 8 GB Orin [3rd]
CUDA_CONTEXT = int(1.0 * GB)  # context + TensorRT / TensorRT-LLM kernel images with lazy loading [est; README4Jetson]
STACK_REST = int(0.8 * GB)  # controlsd, navigatord, camerad, recordd, vlmd's Python + ONNX Runtime [est]
VISION_WORKSPACE = 1 << 30  # build_vision_engine's TensorRT workspace limit
SCALE_GROUP = 128  # INT4 weight-only / AWQ group size: one FP16 scale per 128 weights
# Vision towers and projectors (SigLIP so400m-patch14-384: hidden 1152, FFN 4304, 27 layers, 729 patches).
SIGLIP = {"hidden": 1152, "inter": 4304, "layers": 27, "patches": 729, "patch": 14}


def llm_parameters(m: LlmConfigSummary) -> dict[str, int]:
    """{embed, body, lm_head}: Llama / Qwen2 layout (q, k, v, o projections; gate / up / down MLP; 2 RMSNorms per
    layer, one final), embedding and lm_head untied. Qwen2's q/k/v biases are counted."""
    h, d = m.hidden_size, m.head_dim
    attn = h * m.num_heads * d + 2 * h * m.num_kv_heads * d + m.num_heads * d * h
    if m.model_type.startswith("qwen"):
        attn += m.num_heads * d + 2 * m.num_kv_heads * d
    per_layer = attn + 3 * h * m.intermediate_size + 2 * h
    return {"embed": m.vocab_size * h, "body": m.num_layers * per_layer + h, "lm_head": m.vocab_size * h}


def vision_parameters(family: str, llm_hidden: int) -> int:
    s = SIGLIP
    h, inter = s["hidden"], s["inter"]
    layer = 4 * h * h + 4 * h + 2 * h * inter + inter + h + 4 * h
    layers = s["layers"] if family == "navila" else s["layers"] - 1  # LLaVA-NeXT drops the last layer
    embed = 3 * s["patch"] ** 2 * h + h + s["patches"] * h
    if family == "navila":  # mlp_downsample: LayerNorm(4h) → Linear(4h, d) → GELU → Linear(d, d)
        proj = 2 * 4 * h + 4 * h * llm_hidden + llm_hidden + llm_hidden * llm_hidden + llm_hidden
    else:  # mlp2x_gelu: Linear(h, d) → GELU → Linear(d, d)
        proj = h * llm_hidden + llm_hidden + llm_hidden * llm_hidden + llm_hidden
    return layers * layer + embed + 2 * h + proj


@dataclass(frozen=True)
class Item:
    name: str
    bytes: int
    how: str


def plan_items(plan: LlmBuildPlan, vision_max_batch: int, runner: str = "python") -> list[Item]:
    p = llm_parameters(plan.llm)
    body = p["body"] // 2 + p["body"] // SCALE_GROUP * 2
    fp16 = 2 * (p["embed"] + p["lm_head"])
    engine = body + fp16
    vis = vision_parameters(plan.family, plan.llm.hidden_size) * 2
    act = vision_max_batch * SIGLIP["patches"] * SIGLIP["inter"] * 2 * 2
    items = [
        Item(
            "LLM engine weights (INT4)",
            engine,
            f"body {p['body'] / 1e9:.2f} B × 0.5 B + scales {p['body'] / 1e9:.2f} B / {SCALE_GROUP} × 2 B + embed "
            f"{p['embed'] / 1e6:.0f} M + lm_head {p['lm_head'] / 1e6:.0f} M in FP16 × 2 B",
        ),
        Item(
            "KV cache (FP16)",
            plan.kv_cache.bytes_at_max_seq_len,
            f"{plan.kv_cache.bytes_per_token} B/token × max_seq_len {plan.sizes.max_seq_len}",
        ),
        Item("vision engine weights (FP16)", vis, f"SigLIP so400m + {plan.family} projector × 2 B"),
        Item(
            "vision activations [est]",
            act,
            f"max batch {vision_max_batch} × 729 tokens × FFN {SIGLIP['inter']} × 2 B × 2 live buffers",
        ),
        Item("TensorRT workspace (vision build limit)", VISION_WORKSPACE, "build_vision_engine workspace"),
        Item("CUDA context + kernels [est]", CUDA_CONTEXT, "lazy loading (README4Jetson: 1.0 GB saved by it)"),
    ]
    if runner == "python":
        items.append(
            Item("engine host copy (Python ModelRunner)", engine, "ModelRunner reads the whole engine into RAM")
        )
    items += [
        Item("rest of the stack [est]", STACK_REST, "control, navigation, camera, recorder, vlmd"),
        Item("OS + drivers [3rd]", OS_RESERVE, "≈1.5–2 GB on a headless Orin"),
    ]
    return items


def render(plan: LlmBuildPlan, vision_max_batch: int, modules: list[str] | None = None, runner: str = "python") -> str:
    items = plan_items(plan, vision_max_batch, runner)
    total = sum(i.bytes for i in items)
    lines = [f"Memory plan: {plan.family} ({plan.llm.model_type}, {plan.route}), {runner} runner"]
    for i in items:
        lines.append(f"  {i.bytes / GIB:7.2f} GiB  {i.name}: {i.how}")
    lines.append(f"  {total / GIB:7.2f} GiB  total ({total / GB:.1f} GB)")
    other = "cpp" if runner == "python" else "python"
    alt = total_bytes(plan, vision_max_batch, other)
    label = {"python": "Python ModelRunner", "cpp": "ModelRunnerCpp + use_mmap (no host copy)"}
    lines.append(f"  ({label[other]}: {alt / GB:.1f} GB)")
    for name in modules or list(MODULES_GB):
        ram = MODULES_GB[name] * GB
        verdict = "fits" if total <= ram else "DOES NOT FIT"
        alt_v = "fits" if alt <= ram else "does not fit"
        lines.append(
            f"  {name:12s} {MODULES_GB[name]:3d} GB: {verdict} (margin {(ram - total) / GB:+.1f} GB); "
            f"{label[other]}: {alt_v} ({(ram - alt) / GB:+.1f} GB)"
        )
    return "\n".join(lines)


def total_bytes(plan: LlmBuildPlan, vision_max_batch: int, runner: str = "python") -> int:
    return sum(i.bytes for i in plan_items(plan, vision_max_batch, runner))


def fit_problem(plan: LlmBuildPlan, vision_max_batch: int, ram_bytes: int, runner: str = "python") -> str | None:
    """None when the plan fits `ram_bytes` (the module's RAM as sold, or MemTotal), else why not."""
    need = total_bytes(plan, vision_max_batch, runner)
    if need <= ram_bytes:
        return None
    return (
        f"the {plan.family} engines and the stack need ≈ {need / GB:.1f} GB, this machine has {ram_bytes / GB:.1f} GB "
        "(see `build_engines.py --plan`; options: the C++ runner with mmap, a smaller vision batch, remote offload)"
    )
