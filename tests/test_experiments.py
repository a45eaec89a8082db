"""The training scripts run end to end and write the documented summary.json."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_loggers import wandb_history

import envs

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {
    "algo", "env", "num_seeds", "total_env_steps", "final_return_mean", "final_return_per_seed",
    "eval_return_mean", "compile_seconds", "run_seconds", "env_steps_per_second",
    "jax_version", "backend", "device_count", "config", "hparams", "versions", "cpu",
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
    "cem": ["--population-size", "8", "--num-generations", "4"],
    "q_learning": ["--num-envs", "4", "--rollout-len", "16", "--total-steps", "2048"],
    "behaviour_cloning": [
        "--num-envs", "4", "--rollout-len", "16", "--dagger-iterations", "1",
        "--num-sgd-steps", "20", "--eval-episodes", "4",
    ],
}  # fmt: skip
# (updates, env steps) where they are not 2048 // (4 * 16) updates of 2048 steps in all:
# a CEM generation steps population_size episodes to Probe-4's time limit of 100;
# behaviour cloning collects num_envs * rollout_len steps in each of its 2 iterations.
BUDGET = {"cem": (4, 4 * 8 * 100), "behaviour_cloning": (2, 2 * 4 * 16)}
# The continuous-action agents run on the continuous probe (rescaled actions included);
# the tabular ones on a grid world (they need a state index, the cloner an exact expert).
ENV = {
    "sac": "ContinuousProbe-4",
    "td3": "ContinuousProbe-4",
    "q_learning": "GridWorld-Empty-8x8",
    "behaviour_cloning": "GridWorld-Empty-8x8",
}


@pytest.mark.parametrize("algo", sorted(SMALL))
def test_script_writes_summary_and_curve(algo, tmp_path):
    out = tmp_path / algo
    env = ENV.get(algo, "Probe-4")
    cmd = [sys.executable, str(ROOT / "experiments" / f"{algo}.py"), "--env", env]
    cmd += ["--num-seeds", "2", "--out", str(out), *SMALL[algo]]
    env_vars = dict(os.environ)
    if algo == "ppo":  # the --wandb-project path too, offline (files in tmp_path only)
        cmd += ["--wandb-project", "jaxrl-test"]
        env_vars |= {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}
        env_vars |= {name: str(tmp_path) for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR")}
    if algo == "dqn":  # the 2 seeds split over 2 CPU devices the script exposes itself
        cmd += ["--cpu-devices", "2"]
        env_vars.pop("XLA_FLAGS", None)
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env_vars
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert not FIELDS - set(summary), FIELDS - set(summary)
    assert summary["algo"] == algo and summary["num_seeds"] == 2
    # The whole stack's versions and the CPU: what decides whether a rerun is bit-exact.
    assert summary["versions"]["jax"] == summary["jax_version"]
    assert summary["versions"]["jaxlib"] and summary["versions"]["flax"]
    assert summary["cpu"]["usable_cores"] >= 1
    assert len(summary["final_return_per_seed"]) == 2
    updates, steps = BUDGET.get(algo, (2048 // (4 * 16), 2048))
    assert summary["total_env_steps"] == steps
    assert (out / "curve.png").stat().st_size > 0
    assert "final return" in result.stdout
    # Progress lines from inside the compiled run, the last one at the final update.
    assert f"{algo} {env}: {updates}/{updates} updates" in result.stdout
    assert "steps/s" in result.stdout
    assert isinstance(summary["eval_return_mean"], float)
    per_seed = summary["eval_return_per_seed"]
    assert len(per_seed) == 2 and abs(sum(per_seed) / 2 - summary["eval_return_mean"]) < 1e-4
    if algo == "ppo":  # one wandb row per update (fewer than progress.REPORTS), by env steps
        (run_dir,) = (out / "wandb").glob("offline-run-*")
        history = wandb_history(run_dir)
        assert [h["step"]["num"] for h in history] == [64 * u for u in range(1, updates + 1)]
        assert history[-1]["item"]["update"] == updates
    if algo == "dqn":
        assert summary["device_count"] == 2 and summary["devices_used"] == 2
    if algo == "sarsa":
        assert summary["config"]["bootstrap"] == "expected"
    if algo == "q_learning":  # compared with the exact solution of the grid world
        assert summary["optimal_value_at_start"] > 0
        assert len(summary["greedy_value_at_start_per_seed"]) == 2
        assert (
            max(summary["greedy_value_at_start_per_seed"])
            <= summary["optimal_value_at_start"] + 1e-5
        )
    if algo == "behaviour_cloning":
        assert summary["expert_return_mean"] > 0.8  # Empty-8x8: goal in 10 steps
        assert summary["fraction_of_expert"] is not None


def test_value_iteration_script_agrees_across_methods(tmp_path):
    out = tmp_path / "vi"
    cmd = [sys.executable, str(ROOT / "experiments" / "value_iteration.py"), "--out", str(out)]
    cmd += ["--env", "GridWorld-FourRooms", "--eval-episodes", "16"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {
        "value_iteration", "policy_iteration", "modified_policy_iteration"
    }  # fmt: skip
    assert summary["max_value_difference"] < 1e-4
    assert summary["num_states"] == 104 and summary["num_actions"] == 4
    # No slip: the greedy policy reaches the goal, 1 - 0.01 per step over 20 steps.
    assert abs(summary["eval_return_mean"] - 0.8) < 1e-4
    assert (out / "values.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run(
        cmd[:-4] + ["--env", "gymnax:CartPole-v1"], capture_output=True, text=True, timeout=300
    )
    assert bad.returncode != 0 and "has no tabular model" in bad.stderr


def test_bench_tabular_small_run(tmp_path):
    cmd = [sys.executable, str(ROOT / "experiments" / "bench_tabular.py"), "--out", str(tmp_path)]
    cmd += ["--settings", "64", "--runs", "64", "--pulls", "300", "--repeats", "1"]
    cmd += ["--loop-runs", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    for workload in ("value_iteration", "ucb1"):
        assert summary[workload]["agree"] is True, summary[workload]
        assert summary[workload]["jaxrl_run_seconds"] > 0
    assert (
        summary["value_iteration"]["iterations_jaxrl_max"]
        == (summary["value_iteration"]["iterations_numpy_max"])
    )


# The benchmark scripts' smoke runs compile PPO several times each: slow tier (CI runs it).
@pytest.mark.slow
def test_bench_progress_small_run(tmp_path):
    cmd = [sys.executable, str(ROOT / "experiments" / "bench_progress.py"), "--out", str(tmp_path)]
    cmd += ["--num-seeds", "2", "--total-steps", "4096", "--repeats", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["results_identical"] is True
    assert summary["ratio_to_no_reports"]["no_reports"] == 1.0
    assert set(summary["run_seconds"]) == {
        "no_reports", "reports_unwatched", "progress_and_logs", "host_reports", "no_health"
    }  # fmt: skip
    assert summary["health_overhead_percent"] > -100


@pytest.mark.slow
def test_reproducibility_rerun_is_bit_identical(tmp_path):
    cmd = [sys.executable, str(ROOT / "experiments" / "reproducibility.py"), "--out", str(tmp_path)]
    bad = subprocess.run(cmd + ["--settings", "nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "choose from" in bad.stderr
    bad = subprocess.run(cmd + ["--total-steps", "1000"], capture_output=True, text=True)
    assert bad.returncode != 0 and "multiple of 1024" in bad.stderr
    assert not (tmp_path / "summary.json").exists()
    cmd += ["--total-steps", "2048", "--settings", "default", "rerun", "one_core"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["reference"] == "default" and summary["versions"]["jax"]
    for agent in ("trpo", "ppo"):
        rerun = summary["results"]["rerun"][agent]
        assert rerun["bit_identical"] is True  # same process settings: bit for bit
        assert summary["results"]["one_core"][agent]["final_return"] > 0


@pytest.mark.slow
def test_bench_locomotion_small_run(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "experiments" / "bench_locomotion.py"),
        "--out",
        str(tmp_path),
    ]
    bad = subprocess.run(cmd + ["--envs", "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "choose from" in bad.stderr
    bad = subprocess.run(
        cmd + ["--envs", "inverted_pendulum", "--jaxrl-set", "nope=1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode != 0 and "not PPOConfig or PPOHParams fields" in bad.stderr
    bad = subprocess.run(
        cmd + ["--envs", "inverted_pendulum", "--steps", "100"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode != 0 and "--steps=100 not allowed" in bad.stderr
    assert not (tmp_path / "summary.json").exists()
    cmd += ["--envs", "inverted_pendulum", "--steps", "40960", "--seeds", "1", "--evals", "2"]
    cmd += ["--eval-episodes", "2"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["script"] == "bench_locomotion" and summary["versions"]["brax"]
    assert "device_put_replicated" in summary["shim"]
    full = json.loads((tmp_path / "bench_locomotion.json").read_text())
    runs = full["results"]["inverted_pendulum"]["runs"]
    for lib in ("jaxrl", "brax"):
        (run,) = runs[lib]
        steps = [point["env_steps"] for point in run["curve"]]
        assert len(steps) == 2 and steps[-1] <= 40960 and steps == sorted(steps), steps
        assert all(point["eval_return"] > 0 for point in run["curve"])  # reward 1 per step
        final = summary["final"]["inverted_pendulum"][lib]["final_eval_mean"]
        assert final == run["curve"][-1]["eval_return"]
    ratios = summary["ratios"]["inverted_pendulum"]
    assert ratios["final_eval_jaxrl_over_brax"] > 0 and ratios["wall_brax_over_jaxrl"] > 0
    assert (tmp_path / "inverted_pendulum.png").stat().st_size > 0


@pytest.mark.slow
def test_bench_scaling_small_run(tmp_path):
    cmd = [sys.executable, str(ROOT / "experiments" / "bench_scaling.py"), "--out", str(tmp_path)]
    # The script forces its own 4 CPU devices; a count in XLA_FLAGS would win over it.
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    bad = subprocess.run(
        cmd + ["--devices", "2", "4"], capture_output=True, text=True, timeout=300, env=env
    )
    assert bad.returncode != 0 and "it must include 1" in bad.stderr
    assert not (tmp_path / "summary.json").exists()
    cmd += ["--num-envs", "8", "--num-seeds", "4", "--total-steps", "2048"]
    cmd += ["--repeats", "1", "--devices", "1", "4"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == {"script": "bench_scaling"} | json.loads(
        (tmp_path / "bench_scaling.json").read_text()
    )
    assert summary["device_count"] == 4
    assert set(summary["target_met"]) == {"single_run", "sweep"}
    rows = {(r["case"], r["devices"]): r for r in summary["rows"]}
    assert set(rows) == {(case, d) for case in ("single_run", "sweep") for d in (1, 4)}
    for (case, _), row in rows.items():
        assert row["total_env_steps"] == 2048  # 2 updates of 8 envs x 128 steps, either way
        assert row["compile_seconds"] > 0 and row["run_seconds"] > 0
        assert row["overhead"] == row["run_seconds"] / rows[case, 1]["run_seconds"]
        # Split over 4 devices, the same runs (up to float rounding).
        assert abs(row["final_return_mean"] - rows[case, 1]["final_return_mean"]) < 1e-3


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


@pytest.mark.parametrize(
    "env, algorithms",
    [
        ("Bandit-Bernoulli", {"eps-greedy", "ucb1", "beta-thompson", "gaussian-thompson"}),
        (
            "ContextualBandit-Linear",
            {"eps-greedy", "ucb1", "gaussian-thompson", "linucb", "linear-thompson"},
        ),
    ],
)
def test_bandits_script_writes_summary_and_regret_plot(env, algorithms, tmp_path):
    out = tmp_path / "bandits"
    cmd = [sys.executable, str(ROOT / "experiments" / "bandits.py"), "--env", env]
    cmd += ["--num-runs", "8", "--num-steps", "200", "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    common = {
        "algo", "env", "num_runs", "num_steps", "compile_seconds", "run_seconds",
        "jax_version", "backend", "device_count", "cpu_count", "regret_plot", "algorithms",
        "versions", "cpu",
    }  # fmt: skip
    assert not common - set(summary), common - set(summary)
    assert summary["algo"] == "bandits" and summary["env"] == env
    assert summary["num_runs"] == 8 and summary["num_steps"] == 200
    assert set(summary["algorithms"]) == algorithms
    for name, stats in summary["algorithms"].items():
        low, high = stats["final_regret_ci95"]
        # Pseudo-regret is >= 0 per pull; the mean lies inside its bootstrap interval.
        assert 0 <= low <= stats["final_regret_mean"] <= high, name
        assert name in result.stdout
    assert (out / summary["regret_plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "summary.json.tmp").exists()


def test_bandits_script_rejects_a_non_bandit_env(tmp_path):
    cmd = [sys.executable, str(ROOT / "experiments" / "bandits.py"), "--out", str(tmp_path)]
    result = subprocess.run(
        cmd + ["--env", "GridWorld-Empty-8x8"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert "must be one of BernoulliBandit, GaussianBandit, ContextualBandit" in result.stderr
    assert not (tmp_path / "summary.json").exists()


def test_env_param_flags_parse_to_overrides():
    from jaxrl.experiment import parse_env_params

    parsed = parse_env_params(("slip=0.2", "obs_mode=image", " view_size = 7 "))
    assert parsed == {"slip": 0.2, "obs_mode": "image", "view_size": 7}
    # numbers Python's literals lack are numbers, for the env's checks to judge
    parsed = parse_env_params(("step_cost=inf", "slip=nan", "x=-Infinity"))
    assert parsed["step_cost"] == np.inf and np.isnan(parsed["slip"]) and parsed["x"] == -np.inf
    with pytest.raises(ValueError, match=r"step_cost=inf is not allowed; it must be in \[0, inf\)"):
        envs.make("GridWorld-FourRooms", **parse_env_params(("step_cost=inf",)))
    with pytest.raises(ValueError, match="must be name=value"):
        parse_env_params(("slip",))


@pytest.mark.slow
def test_bench_presets_small_run(tmp_path):
    """jaxrl's side as CI runs it (rejax is an optional extra, ``.[bench]``); the
    rejax side and the comparison in the next test where rejax is installed."""
    cmd = [sys.executable, str(ROOT / "experiments" / "bench_presets.py"), "--out", str(tmp_path)]
    bad = subprocess.run(cmd + ["--pairs", "ppo@nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "choose from" in bad.stderr
    if importlib.util.find_spec("rejax") is None:
        bad = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert bad.returncode != 0 and "not installed" in bad.stderr
    assert not (tmp_path / "summary.json").exists()
    pair = "ppo@gymnax:CartPole-v1"  # among the cheapest: 100k env steps, about 20 s each
    result = subprocess.run(
        cmd + ["--pairs", pair, "--seeds", "1", "--libs", "jaxrl"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["script"] == "bench_presets" and summary["versions"]["jax"]
    assert summary["comparison"] == {}  # nothing to compare against
    full = json.loads((tmp_path / "bench_presets.json").read_text())["results"][pair]
    assert set(full) == {"jaxrl"}
    assert full["jaxrl"]["preset"]["name"] == pair  # jaxrl train applied the pair's preset
    assert full["jaxrl"]["env_steps"] == 100_000
    (ret,) = full["jaxrl"]["per_seed"]
    assert 0 < ret <= 500 and summary["means"][pair]["jaxrl"] == ret  # CartPole's range


@pytest.mark.slow
def test_bench_presets_against_rejax(tmp_path):
    pytest.importorskip("rejax", reason="rejax is the optional .[bench] extra")
    pair = "ppo@gymnax:CartPole-v1"
    cmd = [sys.executable, str(ROOT / "experiments" / "bench_presets.py"), "--out", str(tmp_path)]
    result = subprocess.run(
        cmd + ["--pairs", pair, "--seeds", "1"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    full = json.loads((tmp_path / "bench_presets.json").read_text())["results"][pair]
    assert full["jaxrl"]["env_steps"] == full["rejax"]["env_steps"] == 100_000
    for lib in ("jaxrl", "rejax"):
        (ret,) = full[lib]["per_seed"]
        assert 0 < ret <= 500 and summary["means"][pair][lib] == ret  # CartPole's range
    gap = summary["comparison"][pair]["jaxrl_minus_rejax"]
    assert gap == full["jaxrl"]["mean"] - full["rejax"]["mean"]


@pytest.mark.slow
def test_bench_startup_small_run(tmp_path):
    """jaxrl's side (rejax is the optional .[bench] extra): a cold and a warm process,
    the warm one served by the cache the cold one filled, and where each one's time went."""
    cmd = [sys.executable, str(ROOT / "experiments" / "bench_startup.py"), "--out", str(tmp_path)]
    bad = subprocess.run(cmd + ["--libs", "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "not allowed" in bad.stderr
    assert not (tmp_path / "summary.json").exists()
    result = subprocess.run(
        cmd + ["--repeats", "1", "--libs", "jaxrl"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["script"] == "bench_startup" and set(summary["medians"]) == {
        "jaxrl cold", "jaxrl warm"}  # fmt: skip
    runs = json.loads((tmp_path / "bench_startup.json").read_text())["runs"]
    cold, warm = runs["jaxrl cold"][0], runs["jaxrl warm"][0]
    assert cold["eval_return"] == warm["eval_return"]  # the same run, served from the cache
    for run in (cold, warm):
        phases = run["phases"]
        assert set(phases) == {"start_up", "compile", "train_and_eval", "write", "exit"}
        assert all(seconds >= 0 for seconds in phases.values())
        assert sum(phases.values()) == pytest.approx(run["wall_seconds"])


@pytest.mark.slow
def test_bench_solve_small_run(tmp_path):
    """jaxrl's side (the peers are the optional .[bench] extra): one CartPole process,
    evaluated until its greedy return reaches 475 or the preset's budget is spent."""
    cmd = [sys.executable, str(ROOT / "experiments" / "bench_solve.py"), "--out", str(tmp_path)]
    bad = subprocess.run(cmd + ["--tasks", "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "tasks from" in bad.stderr
    assert not (tmp_path / "summary.json").exists()
    result = subprocess.run(
        cmd + ["--tasks", "cartpole", "--seeds", "1", "--libs", "jaxrl"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    row = summary["table"]["cartpole"]
    assert summary["script"] == "bench_solve" and set(row) == {"jaxrl", "jaxrl warm"}
    runs = json.loads((tmp_path / "bench_solve.json").read_text())["results"]["cartpole"]
    (run,), (warm,) = runs["jaxrl"], runs["jaxrl warm"]
    # the warm process is the same run served from the cache: the same evaluations
    assert [e["return"] for e in warm["evals"]] == [e["return"] for e in run["evals"]]
    evals = run["evals"]
    steps = [e["env_steps"] for e in evals]
    assert steps == sorted(steps) and steps[-1] <= 100_000  # the preset's budget
    assert all(0 < e["return"] <= 500 for e in evals)  # CartPole's range
    seconds = [e["seconds"] for e in evals]
    assert seconds == sorted(seconds) and seconds[-1] < run["wall_seconds"]
    reached = [e["seconds"] for e in evals if e["return"] >= 475]
    # Where it got there: the first such evaluation, and none after it (it stops).
    assert run["seconds_to_threshold"] == (reached[0] if reached else None)
    assert not reached or evals[-1]["seconds"] == reached[0]
    assert (tmp_path / "bench_solve.png").stat().st_size > 0
