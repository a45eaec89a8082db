"""Presets: every one loads, applies to its algorithm and validates; the command line
applies the pair's preset, lets flags override single fields, and records it."""

import json

import pytest
import tyro

from jaxrl import cli, experiment, presets


@pytest.mark.parametrize("preset", presets.all_presets(), ids=lambda p: p.name)
def test_every_preset_applies_to_its_algorithm(preset):
    assert preset.algo in cli.ALGOS, preset.algo
    _, config_cls, hparams_cls, default_config = cli.ALGOS[preset.algo].load()
    config, hparams = preset.apply(default_config, hparams_cls())  # __post_init__ validates
    for name, value in preset.config.items():
        got = getattr(config, name)
        assert got == (tuple(value) if isinstance(value, list) else value), name
    assert hparams.validate() == hparams._replace(**preset.hparams)
    low, high = preset.result["spread"]
    assert low <= preset.result["mean"] <= high and preset.result["seeds"] >= 4
    assert preset.result["command"].startswith(f"jaxrl train {preset.algo} --env {preset.env}")


def test_choose_auto_none_and_by_name():
    preset = presets.all_presets()[0]
    assert presets.choose(preset.algo, preset.env) is preset
    assert presets.choose(preset.algo, preset.env, "none") is None
    assert presets.choose(preset.algo, "Probe-1") is None
    assert presets.choose(preset.algo, "Probe-1", preset.name) is preset
    with pytest.raises(ValueError, match="--preset 'nope' is not allowed; it must be 'auto'"):
        presets.choose(preset.algo, preset.env, "nope")
    other = next(a for a in cli.ALGOS if a != preset.algo)
    with pytest.raises(ValueError, match=f"is for {preset.algo}, not {other}"):
        presets.choose(other, preset.env, preset.name)


def test_unknown_fields_are_refused_with_the_allowed_ones():
    preset = presets.all_presets()[0]
    _, config_cls, hparams_cls, default_config = cli.ALGOS[preset.algo].load()
    bad = presets.Preset(preset.algo, preset.env, "test", {"num_envz": 2}, {}, preset.result, "x")
    with pytest.raises(ValueError, match=r"config field\(s\) \['num_envz'\] are not fields"):
        bad.apply(default_config, hparams_cls())


def test_flag_value_reads_both_spellings_and_the_last():
    argv = ["--env", "a", "--lr", "1", "--env=b", "--preset", "none"]
    assert presets.flag_value(argv, "--env") == "b"
    assert presets.flag_value(argv, "--preset") == "none"
    assert presets.flag_value(argv, "--seed") is None


def parse(algo, argv):
    """The command line's parsed args, as ``jaxrl train`` builds them (no training)."""
    module, config_cls, hparams_cls, default_config = cli.ALGOS[algo].load()
    preset, config, hparams = experiment.preset_defaults(
        algo, argv, cli.ALGOS[algo].default_env, default_config, hparams_cls()
    )
    args_cls = experiment.args_class(algo, config_cls, hparams_cls, "x", config, hparams)
    return preset, tyro.cli(args_cls, args=["--out", "o", *argv])


def test_command_line_applies_the_preset_and_flags_override_fields(capsys):
    preset = presets.get("ppo", "gymnax:Acrobot-v1")
    used, args = parse("ppo", ["--env", preset.env, "--lr", "0.123"])
    assert used is preset and "preset ppo@gymnax:Acrobot-v1" in capsys.readouterr().out
    assert args.hparams.lr == 0.123  # the flag wins over the preset's lr
    assert args.config.num_envs == preset.config["num_envs"]  # the rest is the preset's
    assert args.hparams.ent_coef == preset.hparams["ent_coef"]
    used, args = parse("ppo", ["--env", preset.env, "--preset", "none"])
    assert used is None and args.config == cli.ALGOS["ppo"].load()[3]
    assert "preset: none (--preset none)" in capsys.readouterr().out
    used, _ = parse("ppo", ["--env", "gymnax:MountainCar-v0"])
    assert used is None and "preset: none for ppo on gymnax:MountainCar-v0" in (
        capsys.readouterr().out
    )


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
