"""The ``jaxrl`` command: train -> eval -> plot -> export on one run directory, resume
after a stop, a sweep, and the errors a user meets first."""

import json
import re

import jax
import numpy as np
import pytest

import envs
import jaxrl
from jaxrl import checkpoint, cli, experiment
from jaxrl.agents import ppo
from jaxrl.export import load_policy

ENV = "GridWorld-Empty-8x8"
# 4 envs x 16 steps, 8 updates; chunks of 4 updates when checkpointing.
TRAIN = ["--env", ENV, "--num-seeds", "2", "--num-envs", "4", "--rollout-len", "16"]
TRAIN += ["--total-steps", "512"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    summary = cli.run(["train", "ppo", *TRAIN, "--out", str(out), "--lr", "1e-3"])
    assert summary["complete"] and summary["updates_done"] == 8
    return out


def test_train_writes_a_complete_run_directory(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["algo"] == "ppo" and summary["hparams"]["lr"] == pytest.approx(1e-3)
    assert summary["config"]["num_envs"] == 4 and summary["env_overrides"] == {}
    files = {p.name for p in run_dir.iterdir()}
    assert {"curve.png", "curves.npz", "checkpoints", "progress.csv", "progress.jsonl"} <= files
    assert np.load(run_dir / "curves.npz")["episodes"].shape == (2, 8)
    progress = (run_dir / "progress.csv").read_text().splitlines()
    assert progress[0].startswith("update,env_steps,steps_per_second,episodes,return_mean")
    assert [int(line.split(",")[0]) for line in progress[1:]] == list(range(1, 9))


def test_eval_restores_the_final_policies_and_uses_the_same_keys_for_every_seed(run_dir):
    result = cli.run(["eval", str(run_dir), "--episodes", "8"])
    assert result["update"] == 8 and len(result["return_per_seed"]) == 2
    assert json.loads((run_dir / "eval.json").read_text()) == result
    # The same numbers as evaluating the restored final state here, with eval seed 12345
    # (that the restored state is the trained one, bit for bit, is tested below).
    run = jaxrl.load_run(run_dir)
    config, state = run.config, run.state
    expected = experiment.evaluate_runs(ppo.make_policy, config, ENV, {}, state, 8, 12345)
    np.testing.assert_allclose(result["return_per_seed"], expected, rtol=1e-6)


def test_plot_and_export_from_the_run_directory(run_dir, tmp_path):
    (run_dir / "curve.png").unlink()
    assert cli.run(["plot", str(run_dir)]) == run_dir / "curve.png"
    assert (run_dir / "curve.png").stat().st_size > 1000

    artifact = cli.run(["export", str(run_dir), str(tmp_path / "policy"), "--seed-index", "1"])
    policy = load_policy(artifact)
    run = jaxrl.load_run(run_dir)
    assert run.agent is ppo.AGENT and run.update == 8 and run.summary["algo"] == "ppo"
    config, state = run.config, run.state
    env, params = envs.make(ENV)
    one = jax.tree.map(lambda x: x[1], state)
    act = ppo.make_policy(config, env, params, one, True)
    obs = jax.vmap(env.observation_space(params).sample)(jax.random.split(jax.random.key(3), 9))
    np.testing.assert_array_equal(policy(np.asarray(obs)), np.asarray(act(jax.random.key(0), obs)))
    with pytest.raises(ValueError, match="seed_index=2 is not allowed; the run has 2 seeds"):
        cli.run(["export", str(run_dir), str(tmp_path / "p2"), "--seed-index", "2"])


def test_render_draws_an_episode_of_the_runs_policy(run_dir, tmp_path):
    path = cli.run(["render", str(run_dir), "--out", str(tmp_path / "ep"), "--seed-index", "1"])
    assert path == tmp_path / "ep.gif" and path.stat().st_size > 1000


def test_a_stopped_run_resumes_and_a_finished_one_is_not_overwritten(run_dir, tmp_path):
    out = tmp_path / "resumable"
    flags = ["train", "ppo", *TRAIN, "--out", str(out), "--lr", "1e-3", "--checkpoint-every", "4"]
    first = cli.run([*flags, "--stop-after", "4"])
    assert not first["complete"] and first["updates_done"] == 4
    with pytest.raises(ValueError, match="--stop-after=4 is already reached"):
        cli.run([*flags, "--stop-after", "4"])
    second = cli.run(flags)
    assert second["complete"] and second["resumed_from_update"] == 4
    # Resumed in chunks, it ends where the one-call run of the fixture ended.
    resumed, whole = jaxrl.load_run(out).state, jaxrl.load_run(run_dir).state
    for a, b in zip(
        jax.tree.leaves(checkpoint.plain(resumed)),
        jax.tree.leaves(checkpoint.plain(whole)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="already holds this run, complete"):
        cli.run(flags)
    with pytest.raises(ValueError, match=r"hparams\.lr: checkpoint 0\.001"):
        cli.run([*flags[:-4], "--lr", "3e-4", "--checkpoint-every", "4"])


def test_sweep_writes_a_table_summary_and_plot(tmp_path):
    out = tmp_path / "sweep"
    summary = cli.run(
        ["sweep", "ppo", *TRAIN, "--grid", "lr=1e-3,3e-4", "--eval-episodes", "4",
         "--env-param", "slip=0.1", "--out", str(out)]
    )  # fmt: skip
    assert [p["lr"] for p in summary["points"]] == [1e-3, 3e-4]
    assert summary["env_overrides"] == {"slip": 0.1}
    assert all(p["mean_ci95"][0] <= p["mean"] <= p["mean_ci95"][1] for p in summary["points"])
    assert {"runs.csv", "curves.npz", "summary.json", "sweep.png"} <= {
        p.name for p in out.iterdir()
    }
    assert cli.run(["plot", str(out)]) == out / "sweep.png"


def test_envs_lists_every_builtin_with_a_description(capsys):
    names = cli.run(["envs"])
    lines = capsys.readouterr().out.splitlines()
    assert set(names) == set(envs.registered(adapters=False))
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bogus"], "unknown command 'bogus'"),
        (["train", "ppx"], "unknown algorithm 'ppx'"),
        ([], "usage: jaxrl COMMAND"),
    ],
)
def test_unknown_commands_print_the_choices(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err + captured.out


def test_help_lists_config_fields_and_hyperparameters(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.run(["train", "dqn", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--buffer-size", "--lr", "--checkpoint-every", "--env", "--num-seeds"):
        assert flag in text
    assert "Replay capacity" in text or "buffer" in text.lower()


def test_ctrl_c_is_one_line_and_exit_130_unless_debug(capsys):
    """Ctrl-C printed a KeyboardInterrupt traceback (from inside XLA's compiler, when
    pressed while compiling); now one line and the exit code shells expect."""
    with pytest.raises(SystemExit) as exit_info, experiment.clean_errors("jaxrl", ["train"]):
        raise KeyboardInterrupt
    assert exit_info.value.code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "jaxrl: interrupted; run the same command to resume from the last checkpoint, "
        "if one was written"
    ]
    with pytest.raises(KeyboardInterrupt), experiment.clean_errors("jaxrl", ["--debug"]):
        raise KeyboardInterrupt


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "ppo", "--env", ENV, "--env-param", "slip=abc"],
         "GridWorldParams.slip='abc' is not allowed; it must be a number"),
        (["train", "ppo", "--env", ENV, "--lr", "inf"], "PPOHParams.lr=inf is not allowed"),
        (["eval", "/nonexistent/run"], "is not a run directory"),
        (["serve", "/nonexistent/policy", "--port", "99999"], "port=99999 is not allowed"),
        (["train", "ppo", *TRAIN, "--checkpoint-every", "9"],
         "--checkpoint-every=9 is not allowed; it must be in [1, 8]"),
        (["train", "ppo", *TRAIN, "--stop-after", "3", "--checkpoint-every", "2",
          "--log-every", "2"], "--stop-after=3 is not allowed; it must be a multiple of"),
        (["train", "ppo", *TRAIN, "--log-every", "3"], "--log-every=3 is not allowed"),
    ],
)  # fmt: skip
def test_errors_are_one_line_and_exit_2_unless_debug(argv, message, tmp_path, capsys):
    """Bad input through the console script: one line naming the problem, exit code 2,
    no traceback; --debug raises it with its traceback (issue 19)."""
    argv = [*argv, "--out", str(tmp_path / "run")] if argv[0] == "train" else argv
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("jaxrl: error: ") and message in err[0]
    assert err[1] == "jaxrl: add --debug for the traceback"
    with pytest.raises(ValueError, match=re.escape(message)):
        cli.main([*argv, "--debug"])
    assert not (tmp_path / "run").exists()


def test_a_script_reports_errors_the_same_way(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "experiments" / "ppo.py"
    cmd = [sys.executable, str(script), "--env", ENV, "--env-param", "slip=abc"]
    result = subprocess.run(cmd + ["--out", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ppo.py: error: GridWorldParams.slip='abc' is not allowed" in result.stderr


def test_bad_flags_are_refused_before_training(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="--stop-after=4 needs --checkpoint-every"):
        cli.run(["train", "ppo", *TRAIN, "--out", str(tmp_path / "x"), "--stop-after", "4"])
    with pytest.raises(ValueError, match="is not a run directory"):
        cli.run(["eval", str(tmp_path)])
    with pytest.raises(ValueError, match="--grid 'lr' is not allowed; it must be name=v1,v2"):
        cli.run(["sweep", "ppo", *TRAIN, "--grid", "lr", "--out", str(tmp_path / "s")])
    # jax has started in this process, with one CPU device.
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    for command in ("train", "sweep"):
        with pytest.raises(RuntimeError, match="cpu_devices=2: jax has already started"):
            cli.run([command, "ppo", *TRAIN, "--out", str(tmp_path / "c"), "--cpu-devices", "2"])


def test_a_diverged_run_exits_1_with_a_failed_summary(tmp_path, capsys):
    """An absurd learning rate turns every number NaN: the run stops with a message
    naming the quantity, exits 1, and its summary.json says it failed, holds no result
    and is strict JSON (before: exit 0 and a summary that looked normal; issue 19)."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "ppo", *TRAIN, "--lr", "1e30", "--out", str(out)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "jaxrl: failed (Diverged): training diverged: " in err and "parameters" in err
    text = (out / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} in JSON"))
    assert summary["complete"] is False and "final_return_mean" not in summary
    assert summary["failed"]["faults"][0]["update"] == 0
    assert summary["failed"]["last_good_checkpoint"] is None


def test_the_compile_cache_serves_an_identical_second_run(tmp_path):
    """On by default for the command line (issue 20): the first run writes its
    programs to JAXRL_CACHE_DIR, an identical second run finds all of them (writes
    none), and --no-compile-cache leaves the cache alone."""
    import os
    import subprocess
    import sys

    cache = tmp_path / "cache"
    env = os.environ | {"JAXRL_CACHE_DIR": str(cache)}

    def train(out, *flags):
        cmd = [sys.executable, "-c", "from jaxrl.cli import main; main()", "train", "ppo",
               *TRAIN, "--out", str(tmp_path / out), *flags]  # fmt: skip
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        return sorted(p.name for p in cache.rglob("*") if p.is_file())

    first = train("a")
    assert first, "nothing was cached"
    assert train("b") == first
    cache_entries = len(first)
    assert len(train("c", "--no-compile-cache", "--num-seeds", "3")) == cache_entries
