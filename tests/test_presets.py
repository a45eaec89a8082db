"""Presets: every one loads, applies to its algorithm and validates; the command line
applies the pair's preset, lets flags override single fields, and records it."""

import json

import pytest
import tyro

import envs
from jaxrl import agents, cli, experiment, presets


@pytest.mark.parametrize("preset", presets.all_presets(), ids=lambda p: p.name)
def test_every_preset_applies_to_its_algorithm(preset):
    assert preset.algo in agents.registered(), preset.algo
    agent = agents.get(preset.algo)
    config, hparams = preset.apply(agent.Config(), agent.HParams())  # __post_init__ validates
    for name, value in preset.config.items():
        got = getattr(config, name)
        assert got == (tuple(value) if isinstance(value, list) else value), name
    assert hparams.validate() == hparams.replace(**preset.hparams)
    low, high = preset.result["spread"]
    assert low <= preset.result["mean"] <= high and preset.result["seeds"] >= 4
    assert preset.result["command"].startswith(f"jaxrl train {preset.algo} --env {preset.env}")
    envs.make(preset.env, **preset.env_params)  # the env params are the env's


def test_choose_auto_none_and_by_name():
    preset = presets.all_presets()[0]
    assert presets.choose(preset.algo, preset.env) is preset
    assert presets.choose(preset.algo, preset.env, "none") is None
    assert presets.choose(preset.algo, "Probe-1") is None
    assert presets.choose(preset.algo, "Probe-1", preset.name) is preset
    with pytest.raises(ValueError, match="--preset 'nope' is not allowed; it must be 'auto'"):
        presets.choose(preset.algo, preset.env, "nope")
    other = next(a for a in agents.registered() if a != preset.algo)
    with pytest.raises(ValueError, match=f"is for {preset.algo}, not {other}"):
        presets.choose(other, preset.env, preset.name)


def test_unknown_fields_are_refused_with_the_allowed_ones():
    preset = presets.all_presets()[0]
    agent = agents.get(preset.algo)
    bad = presets.Preset(preset.algo, preset.env, "test", {"num_envz": 2}, {}, preset.result, "x")
    with pytest.raises(ValueError, match=r"config field\(s\) \['num_envz'\] are not fields"):
        bad.apply(agent.Config(), agent.HParams())


def test_env_params_are_optional_recorded_and_flags_override_them():
    preset = presets.all_presets()[0]
    entry = {"algo": preset.algo, "env": preset.env, "source": "s", "config": {},
             "hparams": {}, "result": dict(preset.result), "env_params": {"slip": 0.1}}  # fmt: skip
    presets._check(entry, "x.toml")  # env_params is allowed
    with pytest.raises(ValueError, match=r"unknown \['env_paramz'\]"):
        presets._check(entry | {"env_paramz": {}}, "x.toml")
    with_params = presets.Preset(
        preset.algo, "GridWorld-FourRooms", "s", {}, {}, preset.result, "x", {"slip": 0.1}
    )
    assert with_params.record()["env_params"] == {"slip": 0.1}
    assert "GridWorld-FourRooms, slip=0.1:" in with_params.describe()
    assert experiment.env_overrides(with_params, ()) == {"slip": 0.1}
    assert experiment.env_overrides(with_params, ("slip=0.3", "size=5")) == {
        "slip": 0.3, "size": 5}  # fmt: skip
    assert experiment.env_overrides(None, ("slip=0.3",)) == {"slip": 0.3}


def test_train_uses_the_presets_env_params_and_the_flag_wins(tmp_path, monkeypatch):
    result = presets.all_presets()[0].result
    slippery = presets.Preset("ppo", "GridWorld-FourRooms", "test", {"num_envs": 2}, {}, result,
                              "x", {"slip": 0.05})  # fmt: skip
    monkeypatch.setattr(presets, "all_presets", lambda: (slippery,))
    base = ["train", "ppo", "--env", "GridWorld-FourRooms", "--num-seeds", "1",
            "--total-steps", "512"]  # fmt: skip
    for extra, slip in (((), 0.05), (("--env-param", "slip=0.2"), 0.2)):
        out = tmp_path / f"run{slip}"
        cli.run([*base, *extra, "--out", str(out)])
        summary = json.loads((out / "summary.json").read_text())
        assert summary["env_overrides"] == {"slip": slip}
        assert summary["preset"]["env_params"] == {"slip": 0.05}
        assert summary["config"]["num_envs"] == 2


def test_flag_value_reads_both_spellings_and_the_last():
    argv = ["--env", "a", "--lr", "1", "--env=b", "--preset", "none"]
    assert presets.flag_value(argv, "--env") == "b"
    assert presets.flag_value(argv, "--preset") == "none"
    assert presets.flag_value(argv, "--seed") is None


def parse(algo, argv):
    """The command line's parsed args, as ``jaxrl train`` builds them (no training)."""
    agent = agents.get(algo)
    preset, config, hparams = experiment.preset_defaults(
        algo, argv, agent.default_env, agent.Config(), agent.HParams()
    )
    args_cls = experiment.args_class(algo, agent.Config, agent.HParams, "x", config, hparams)
    return preset, tyro.cli(args_cls, args=["--out", "o", *argv])


def test_command_line_applies_the_preset_and_flags_override_fields(capsys):
    preset = presets.get("ppo", "gymnax:Acrobot-v1")
    used, args = parse("ppo", ["--env", preset.env, "--lr", "0.123"])
    assert used is preset and "preset ppo@gymnax:Acrobot-v1" in capsys.readouterr().out
    assert args.hparams.lr == 0.123  # the flag wins over the preset's lr
    assert args.config.num_envs == preset.config["num_envs"]  # the rest is the preset's
    assert args.hparams.ent_coef == preset.hparams["ent_coef"]
    used, args = parse("ppo", ["--env", preset.env, "--preset", "none"])
    assert used is None and args.config == agents.get("ppo").Config()
    assert "preset: none (--preset none)" in capsys.readouterr().out
    used, _ = parse("ppo", ["--env", "Probe-1"])
    assert used is None and "preset: none for ppo on Probe-1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("value", "message"),
    [("nope", "--preset 'nope' is not allowed; it must be 'auto', 'none' or one of"),
     ("dqn@gymnax:CartPole-v1", "--preset 'dqn@gymnax:CartPole-v1' is for dqn, not ppo")],
)  # fmt: skip
def test_bad_preset_flag_is_a_usage_error_not_a_traceback(tmp_path, capsys, value, message):
    with pytest.raises(SystemExit) as exit_:
        cli.run(["train", "ppo", "--preset", value, "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_records_the_preset_in_summary(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "ppo", "--env", "gymnax:Acrobot-v1", "--num-seeds", "1", "--total-steps",
            "1000", "--out", str(out)]  # fmt: skip
    cli.run(argv)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["preset"]["name"] == "ppo@gymnax:Acrobot-v1"
    assert summary["config"]["num_envs"] == summary["preset"]["config"]["num_envs"]
    assert summary["total_env_steps"] == 1000


def test_presets_command_lists_them_with_results(capsys):
    names = cli.run(["presets"])
    assert names == [p.name for p in presets.all_presets()]
    out = capsys.readouterr().out
    assert "reproduce: jaxrl train" in out
    with pytest.raises(SystemExit) as exit_:
        cli.run(["presets", "nope"])
    assert exit_.value.code == 2


def test_without_a_preset_image_observations_get_the_conv_torso(capsys):
    config = agents.get("ppo").Config()
    maze = "GridWorld-Maze"  # image observations by default; no preset
    assert presets.get("ppo", maze) is None
    chosen = experiment.space_defaults(config, maze, {}, ["--env", maze], None)
    assert chosen.torso == "cnn"
    assert "defaults chosen from GridWorld-Maze's spaces: torso='cnn'" in capsys.readouterr().out
    # Left alone: an explicit --torso, --preset none, one-hot observations, a preset.
    for argv, overrides in (
        (["--torso", "mlp"], {}), (["--preset", "none"], {}), ([], {"obs_mode": "onehot"}),
    ):  # fmt: skip
        assert experiment.space_defaults(config, maze, overrides, argv, None).torso == "mlp"
    preset = presets.all_presets()[0]
    assert experiment.space_defaults(config, maze, {}, [], preset) is config


# The conv torso's compile takes about 30 s at -O0: the end-to-end run is in the slow tier.
@pytest.mark.slow
def test_jaxrl_train_on_image_observations_trains_the_conv_torso(tmp_path):
    out = tmp_path / "run"
    cli.run(["train", "ppo", "--env", "GridWorld-Maze", "--num-seeds", "1", "--num-envs", "4",
             "--rollout-len", "16", "--total-steps", "128", "--out", str(out)])  # fmt: skip
    assert json.loads((out / "summary.json").read_text())["config"]["torso"] == "cnn"


def test_without_a_preset_continuous_actions_get_a_squashed_state_dependent_gaussian(capsys):
    config = agents.get("ppo").Config()
    env = "gymnax:MountainCarContinuous-v0"  # Box actions; no PPO preset
    assert presets.get("ppo", env) is None and not config.squash and not config.state_std
    chosen = experiment.space_defaults(config, env, {}, ["--env", env], None)
    assert chosen.squash and chosen.state_std
    assert "squash=True, state_std=True (continuous actions" in capsys.readouterr().out
    kept = experiment.space_defaults(config, env, {}, ["--no-squash"], None)
    assert not kept.squash and kept.state_std  # a flag given by hand stays as given
    assert experiment.space_defaults(config, env, {}, ["--preset", "none"], None) is config
    discrete = experiment.space_defaults(config, "gymnax:Acrobot-v1", {}, [], None)
    assert not discrete.squash  # discrete actions: nothing to choose
    sac = agents.get("sac").Config()  # no squash/state_std fields: nothing to choose
    assert experiment.space_defaults(sac, env, {}, [], None) == sac
