"""Runs sharded over devices (``jaxrl.parallel``): each device's share equals the same
runs vmapped on one device, and progress reports add the devices' shares up.

Four CPU devices are forced in a subprocess (the flag must be set before jax is
imported, and this process has already imported it).
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import pytest

from jaxrl import parallel

CHILD = textwrap.dedent(
    """
    import io, json
    import jax, numpy as np
    import envs
    from jaxrl import parallel, progress
    from jaxrl.agents import dqn, ppo

    env, params = envs.make("gymnax:CartPole-v1")
    config = dqn.DQNConfig(num_envs=4, rollout_len=8, total_steps=4 * 8 * 6, learning_starts=32,
                           buffer_size=64, minibatch_size=16, target_update_every=2)
    train = dqn.make_train(config, env, params)
    keys = jax.random.split(jax.random.key(0), 8)
    hp = dqn.DQNHParams()
    one = parallel.shard_runs(train, 8, num_devices=1)(keys, hp)
    sharded = parallel.shard_runs(train, 8)
    with progress.Progress(config.num_updates, config.batch_size, 8, stream=io.StringIO()) as bar:
        four = jax.block_until_ready(sharded(keys, hp))
    leaf = jax.tree.leaves(four[0].params)[0]
    diff = max(float(np.abs(np.asarray(a, float) - np.asarray(b, float)).max())
               for a, b in zip(jax.tree.leaves((one[0].params, one[1])),
                               jax.tree.leaves((four[0].params, four[1]))))
    returns = one[1]["episode_return_sum"].sum(0) / np.maximum(one[1]["episodes"].sum(0), 1)
    # PPO batches two loops over its runs: the orthogonal init's per-seed QRs and the
    # minibatch shuffle's cycle walking (a while loop whose predicate vmap reduces over
    # the runs); compiled sharded, neither may need a collective.
    ppo_config = ppo.PPOConfig(num_envs=4, rollout_len=8, total_steps=4 * 8 * 2)
    ppo_train = ppo.make_train(ppo_config, env, params)
    text = parallel.shard_runs(ppo_train, 8).lower(keys, ppo.PPOHParams()).compile().as_text()
    ops = ("all-reduce(", "all-gather(", "all-to-all(", "collective-permute(", "reduce-scatter(")
    print(json.dumps({
        "ppo_collectives": sum(text.count(op) for op in ops),
        "devices": len(leaf.sharding.device_set),
        "max_abs_diff": diff,
        "history": bar.history,
        "expected": [[u + 1, float(r)] for u, r in enumerate(returns)
                     if one[1]["episodes"][:, u].sum() > 0],
    }))
    """
)


def on_four_devices(code: str, timeout: int = 600) -> dict:
    """Run ``code`` in a fresh interpreter with 4 forced CPU devices; its last stdout
    line, parsed as JSON."""
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env = {**os.environ, "XLA_FLAGS": " ".join(["--xla_force_host_platform_device_count=4", *kept])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def four_devices():
    return on_four_devices(CHILD)


def test_sharded_runs_equal_the_same_runs_on_one_device(four_devices):
    assert four_devices["devices"] == 4
    assert four_devices["max_abs_diff"] < 1e-5


def test_sharded_runs_never_talk_to_each_other(four_devices):
    # Each device vmaps its own runs (shard_map): no cross-device op in the program.
    assert four_devices["ppo_collectives"] == 0


def test_progress_adds_up_the_devices_shares(four_devices):
    # One entry per update with finished episodes: each device reported 2 of the 8
    # runs, and the mean return is over all 8.
    history, expected = four_devices["history"], four_devices["expected"]
    assert [u for u, _ in history] == [u for u, _ in expected]
    for (_, got), (_, want) in zip(history, expected, strict=True):
        assert got == pytest.approx(want, rel=1e-5)


SWEEP_CHILD = textwrap.dedent(
    """
    import json
    import numpy as np
    from jaxrl import sweep
    from jaxrl.agents import ppo

    config = ppo.PPOConfig(num_envs=4, rollout_len=16, total_steps=4 * 16 * 4)
    args = (ppo.make_train, config, "GridWorld-Empty-8x8", ppo.PPOHParams(),
            {"lr": [1e-3, 3e-4]})
    one = sweep.sweep(*args, num_seeds=4, devices=1)
    four = sweep.sweep(*args, num_seeds=4, devices=4, batch_size=1)
    diff = max(float(np.abs(one.curves[k] - four.curves[k]).max()) for k in one.curves)
    print(json.dumps({"devices": four.info["devices_used"], "max_abs_diff": diff,
                      "same_rows": one.table[["seed", "lr"]].equals(four.table[["seed", "lr"]])}))
    """
)


def test_a_sweep_split_over_devices_returns_the_same_runs():
    out = on_four_devices(SWEEP_CHILD)
    assert out["devices"] == 4 and out["same_rows"]
    assert out["max_abs_diff"] < 1e-4


def test_device_counts_that_do_not_divide_the_runs_raise():
    with pytest.raises(ValueError, match="devices=3 does not divide the number of runs \\(8\\)"):
        parallel.devices_for(8, 3)
    with pytest.raises(ValueError, match="num_devices=99 is not allowed"):
        parallel.runs_mesh(99)
    with pytest.raises(ValueError, match="in_axes=\\(1, None\\) is not allowed"):
        parallel.shard_runs(lambda k, h: k, 8, in_axes=(1, None))
    assert parallel.devices_for(8) == jax.local_device_count()  # 1 here: divides anything


def test_cpu_device_counts_are_checked(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match=f"cpu_devices={bad!r} is not allowed"):
            parallel.use_cpu_devices(bad)
    # jax has started in this process: its own count is accepted, another is refused.
    count = len(jax.devices("cpu"))
    parallel.use_cpu_devices(count)
    with pytest.raises(RuntimeError, match=f"jax has already started with {count} CPU"):
        parallel.use_cpu_devices(count + 1)
    # A count in XLA_FLAGS wins, and nothing is changed.
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=3")
    parallel.use_cpu_devices(count + 1)


# One run's envs split over 4 devices (jaxrl.parallel.EnvShards), against the same run
# with the same total envs on one device; then a checkpoint moved between 1 and 4.
SPLIT_CHILD = textwrap.dedent(
    """
    import dataclasses, json, tempfile
    from pathlib import Path
    import jax, numpy as np
    import envs
    from jaxrl import checkpoint, training
    from jaxrl.agents import a2c, dqn, ppo, pqn

    def diff(a, b):
        return max(float(np.abs(np.asarray(x, float) - np.asarray(y, float)).max())
                   for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))

    def replicated(params):
        return all(x.sharding.is_fully_replicated and len(x.sharding.device_set) == 4
                   for x in jax.tree.leaves(params))

    def both(module, config, hp, env_name="gymnax:CartPole-v1"):
        env, params = envs.make(env_name)
        keys = jax.random.split(jax.random.key(0), 2)
        runs = {}
        for d in (1, 4):
            train = module.make_train(dataclasses.replace(config, num_devices=d), env, params)
            runs[d] = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, hp)
        return runs[1], runs[4]

    out = {}
    cases = {
        "ppo": (ppo, ppo.PPOConfig(num_envs=8, rollout_len=16, total_steps=8 * 16 * 3,
                                   num_epochs=2, normalize_obs=True, normalize_reward=True),
                ppo.PPOHParams()),
        "ppo_gru": (ppo, ppo.PPOConfig(num_envs=8, rollout_len=8, total_steps=8 * 8 * 3,
                                       gru_size=8, num_minibatches=2), ppo.PPOHParams()),
        "pqn": (pqn, pqn.PQNConfig(num_envs=8, rollout_len=8, total_steps=8 * 8 * 3),
                pqn.PQNHParams()),
        "a2c": (a2c, a2c.A2CConfig(num_envs=8, rollout_len=8, total_steps=8 * 8 * 3),
                a2c.A2CHParams()),
    }
    for name, (module, config, hp) in cases.items():
        one, four = both(module, config, hp)
        out[name] = {
            "params_diff": diff(one[0].params, four[0].params),
            "metrics_diff": diff(one[1], four[1]),
            "env_diff": diff(one[0].env.obs, four[0].env.obs),
            "replicated": replicated(four[0].params),
            "env_split": four[0].env.obs.sharding.spec == jax.sharding.PartitionSpec(None, "envs"),
        }
    config = dqn.DQNConfig(num_envs=8, rollout_len=4, total_steps=8 * 4 * 6, learning_starts=32,
                           buffer_size=256, minibatch_size=16, target_update_every=2)
    one, four = both(dqn, config, dqn.DQNHParams())
    out["dqn"] = {"replicated": replicated(four[0].params),
                  "finite": bool(np.isfinite(np.asarray(jax.tree.leaves(four[0].params)[0])).all()),
                  "episodes_equal": bool((np.asarray(one[1]["episodes"])[:, :2]
                                          == np.asarray(four[1]["episodes"])[:, :2]).all())}

    # A checkpoint saved by a one-device run resumes on four devices and back.
    env, params = envs.make("gymnax:CartPole-v1")
    base = ppo.PPOConfig(num_envs=8, rollout_len=16, total_steps=8 * 16 * 6, num_epochs=2)
    keys, hp = jax.random.split(jax.random.key(1), 2), ppo.PPOHParams()

    def chunked(devices, directory, until):
        config = dataclasses.replace(base, num_devices=devices)
        trainer = ppo.make_train(config, env, params)
        identity = checkpoint.run_identity("ppo", "cartpole", params, config, hp, 2)
        ckpts = checkpoint.Checkpoints(directory, identity)
        state, metrics, _ = training.train_in_chunks(trainer, keys, hp, 2, checkpoints=ckpts,
                                                       until=until)
        ckpts.close()
        return state, metrics

    whole = chunked(1, Path(tempfile.mkdtemp()), None)
    moved = Path(tempfile.mkdtemp())
    chunked(1, moved, 2)
    mid = chunked(4, moved, 4)
    last = chunked(1, moved, None)
    out["resume"] = {"on_four": len(jax.tree.leaves(mid[0].env.obs)[0].sharding.device_set),
                     "params_diff": diff(whole[0].params, last[0].params),
                     "metrics_diff": diff(whole[1], last[1])}
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def split_runs():
    return on_four_devices(SPLIT_CHILD, timeout=900)


@pytest.mark.parametrize("name", ["ppo", "ppo_gru", "pqn", "a2c"])
def test_a_run_split_over_devices_equals_the_run_on_one_device(split_runs, name):
    # Same total envs, per-env keys, gathered minibatches, pmean'd gradients: equal up
    # to float rounding, parameters replicated on all 4 devices, envs split over them.
    run = split_runs[name]
    assert run["replicated"] and run["env_split"]
    assert run["params_diff"] < 1e-5
    assert run["metrics_diff"] < 1e-3  # losses and returns; sums of many floats
    assert run["env_diff"] == 0.0  # the envs stepped exactly alike


def test_dqn_split_over_devices_keeps_one_set_of_parameters(split_runs):
    # Each device samples its own rows of the buffer, so DQN is not the one-device run
    # bit for bit after learning starts; before it, the envs step exactly alike.
    dqn = split_runs["dqn"]
    assert dqn["replicated"] and dqn["finite"] and dqn["episodes_equal"]


def test_a_checkpoint_moves_between_one_and_four_devices(split_runs):
    resume = split_runs["resume"]
    assert resume["on_four"] == 4
    assert resume["params_diff"] < 1e-5
    assert resume["metrics_diff"] < 1e-3


def test_split_envs_are_validated_before_compiling():
    from jaxrl.agents import dqn, ppo

    with pytest.raises(ValueError, match="PPOConfig.num_devices=3 does not divide num_envs=8"):
        ppo.PPOConfig(num_envs=8, num_devices=3)
    with pytest.raises(
        ValueError, match="PPOConfig.max_resets=4 is not allowed with num_devices=4"
    ):
        ppo.PPOConfig(num_envs=8, max_resets=4, num_devices=4)
    with pytest.raises(ValueError, match="num_devices=4 does not divide the 2 env sequences"):
        ppo.PPOConfig(num_envs=8, gru_size=4, num_devices=4)
    with pytest.raises(ValueError, match="prioritised=True is not allowed with num_devices=2"):
        dqn.DQNConfig(num_envs=8, prioritised=True, num_devices=2)
    with pytest.raises(ValueError, match="num_devices=2 does not divide minibatch_size=129"):
        dqn.DQNConfig(num_envs=8, minibatch_size=129, num_devices=2)
    # More devices than this host has: at make_train, before anything compiles.
    config = ppo.PPOConfig(num_envs=8, rollout_len=8, total_steps=64, num_devices=8)
    env, params = __import__("envs").make("gymnax:CartPole-v1")
    with pytest.raises(ValueError, match=r"num_devices=8 is not allowed; it must be in \[1, 1\]"):
        ppo.make_train(config, env, params)


def test_usable_cores_follow_affinity_and_cgroup_quota(tmp_path):
    from jaxrl.provenance import usable_cores

    affinity = len(os.sched_getaffinity(0))
    assert usable_cores(tmp_path / "none") == affinity  # no cgroup files: the affinity
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cores(tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs
    assert usable_cores(tmp_path) == min(affinity, 1)
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cores(v1) == affinity


def test_accelerators_are_judged_without_starting_jax(monkeypatch):
    monkeypatch.setenv("JAX_PLATFORMS", "cuda,cpu")
    assert parallel.accelerator_likely()
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert not parallel.accelerator_likely()


def test_every_core_by_default_on_a_cpu_host():
    """The command line's default (issue 20): one CPU device per usable core, set
    before jax starts; --cpu-devices or XLA_FLAGS still win."""
    child = textwrap.dedent("""
        import json, jax
        from jaxrl import parallel, provenance
        count = parallel.use_every_core()
        print(json.dumps([count, jax.device_count(), provenance.usable_cores()]))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    out = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    count, devices, cores = json.loads(out.stdout.strip().splitlines()[-1])
    assert count == devices == cores
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=3"
    out = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert json.loads(out.stdout.strip().splitlines()[-1])[:2] == [None, 3]
