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
    from jaxrl.agents import dqn

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
    print(json.dumps({
        "devices": len(leaf.sharding.device_set),
        "max_abs_diff": diff,
        "history": bar.history,
        "expected": [[u + 1, float(r)] for u, r in enumerate(returns)
                     if one[1]["episodes"][:, u].sum() > 0],
    }))
    """
)


@pytest.fixture(scope="module")
def four_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    result = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sharded_runs_equal_the_same_runs_on_one_device(four_devices):
    assert four_devices["devices"] == 4
    assert four_devices["max_abs_diff"] < 1e-5


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
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    result = subprocess.run(
        [sys.executable, "-c", SWEEP_CHILD], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
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
