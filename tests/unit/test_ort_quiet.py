"""ONNX Runtime, loaded the way controlsd loads the walking policy, leaves no new thread running and writes nothing.

PyPI's onnxruntime wheels 1.29-1.32 start a telemetry uploader when the module is imported (a thread, then every few
seconds threads for DNS lookups of mobile.events.data.microsoft.com, an event database under ~/.cache/Microsoft). In
controlsd those threads inherit SCHED_FIFO 80 and the locked memory, and they made the 50 Hz tick up to 36 ms late
(docs/design.md "Real-time", docs/results.md). pyproject.toml keeps onnxruntime below 1.29; this test fails on a
wheel that uploads (1.32.0: "started threads"). The variables that make ORT quiet on its own (its CI detection) and
any inherited ORT_TELEMETRY_DISABLED are removed from the child's environment, so a CI runner measures what the robot
gets and engines/ort_runner.py's own setting is what counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# onnxruntime/core/platform/telemetry_environment.h: any of these, set, keeps ORT's telemetry off (CI detection)
_ORT_QUIETING = (
    "CI",
    "TF_BUILD",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "CIRCLECI",
    "TRAVIS",
    "JENKINS_URL",
    "CODEBUILD_BUILD_ID",
    "BUILDKITE",
    "TEAMCITY_VERSION",
    "APPVEYOR",
    "BITBUCKET_BUILD_NUMBER",
    "SYSTEM_TEAMFOUNDATIONCOLLECTIONURI",
    "ORT_RUNNING_UNIT_TESTS",
    "ORT_TELEMETRY_DISABLED",  # engines/ort_runner.py sets it; checked below
)

_CHILD = """
import json, os, sys
import numpy as np
from edge.controls.locomotion import Policy, load_policy_config
tasks = lambda: sorted(os.listdir("/proc/self/task"))
assert "onnxruntime" not in sys.modules, "imported before the first thread count: the test would see nothing"
before = tasks()
policy = Policy(load_policy_config("configs/policies/go2_robot_lab.yaml"), backend="onnxruntime")
policy.warm_up()
import onnxruntime
print(json.dumps({"before": before, "after": tasks(), "version": onnxruntime.__version__,
                  "opt_out": os.environ.get("ORT_TELEMETRY_DISABLED")}))
"""


def test_loading_the_policy_on_onnxruntime_leaves_no_new_thread_and_writes_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in _ORT_QUIETING and k != "XDG_CACHE_HOME"}
    env["HOME"] = str(tmp_path)
    res = subprocess.run([sys.executable, "-c", _CHILD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    new = set(got["after"]) - set(got["before"])
    assert not new, f"onnxruntime {got['version']} started threads {sorted(new)} (telemetry uploader?)"
    written = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")]
    assert not written, f"onnxruntime {got['version']} wrote under HOME: {written}"
    assert got["opt_out"] == "1"  # set by engines/ort_runner.py before ORT loads
