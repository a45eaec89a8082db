"""The training scripts run end to end and write the documented summary.json."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {
    "algo", "env", "num_seeds", "total_env_steps", "final_return_mean", "final_return_per_seed",
    "eval_return_mean", "compile_seconds", "run_seconds", "env_steps_per_second",
    "jax_version", "backend", "device_count", "config", "hparams",
}  # fmt: skip
SMALL = {
    "ppo": ["--num-envs", "4", "--rollout-len", "16", "--total-steps", "2048"],
    "trpo": ["--num-envs", "4", "--rollout-len", "16", "--total-steps", "2048"],
    "a2c": ["--num-envs", "4", "--rollout-len", "16", "--total-steps", "2048"],
    "reinforce": ["--num-envs", "4", "--rollout-len", "16", "--total-steps", "2048"],
    "dqn": [
        "--num-envs", "4", "--rollout-len", "16", "--total-steps", "2048",
        "--learning-starts", "256", "--buffer-size", "512", "--minibatch-size", "32",
    ],
    "pqn": ["--num-envs", "4", "--rollout-len", "16", "--total-steps", "2048",
            "--num-minibatches", "4"],
    "sarsa": ["--num-envs", "4", "--rollout-len", "16", "--total-steps", "2048",
              "--num-minibatches", "4"],
    "sac": [
        "--num-envs", "4", "--rollout-len", "16", "--total-steps", "2048",
        "--learning-starts", "256", "--buffer-size", "512", "--minibatch-size", "32",
        "--hidden-sizes", "32", "32",
    ],
    "td3": [
        "--num-envs", "4", "--rollout-len", "16", "--total-steps", "2048",
        "--learning-starts", "256", "--buffer-size", "512", "--minibatch-size", "32",
        "--hidden-sizes", "32", "32",
    ],
}  # fmt: skip
# The continuous-action agents run on the continuous probe (rescaled actions included).
ENV = {"sac": "ContinuousProbe-4", "td3": "ContinuousProbe-4"}


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_script_writes_summary_and_curve(algo, tmp_path):
    out = tmp_path / algo
    env = ENV.get(algo, "Probe-4")
    cmd = [sys.executable, str(ROOT / "experiments" / f"{algo}.py"), "--env", env]
    cmd += ["--num-seeds", "2", "--out", str(out), *SMALL[algo]]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert not FIELDS - set(summary), FIELDS - set(summary)
    assert summary["algo"] == algo and summary["num_seeds"] == 2
    assert len(summary["final_return_per_seed"]) == 2
    assert summary["total_env_steps"] == 2048
    assert (out / "curve.png").stat().st_size > 0
    assert "final return" in result.stdout
    # Progress lines from inside the compiled run, the last one at the final update.
    total = 2048 // (4 * 16)
    assert f"{algo} {env}: {total}/{total} updates" in result.stdout
    assert "steps/s" in result.stdout
    assert isinstance(summary["eval_return_mean"], float)
    if algo == "sarsa":
        assert summary["config"]["bootstrap"] == "expected"


def test_script_rejects_bad_config_before_compiling(tmp_path):
    cmd = [sys.executable, str(ROOT / "experiments" / "ppo.py"), "--out", str(tmp_path)]
    result = subprocess.run(
        cmd + ["--num-minibatches", "3"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert "num_minibatches=3 does not divide" in result.stderr
    assert not (tmp_path / "summary.json").exists()


def test_script_rejects_devices_that_do_not_split_the_seeds(tmp_path):
    cmd = [sys.executable, str(ROOT / "experiments" / "dqn.py"), "--out", str(tmp_path)]
    cmd += ["--num-seeds", "2", "--devices", "3"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "devices=3 does not divide the number of runs (2)" in result.stderr
    assert not (tmp_path / "summary.json").exists()
