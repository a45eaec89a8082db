"""PPO learning targets (slow tier: `pytest -m slow`), mean over 8 vmapped seeds."""

from dataclasses import replace

import agents_common as common
import jax
import pytest

import envs
from jaxrl import presets
from jaxrl.agents import ppo
from jaxrl.evaluate import evaluate
from jaxrl.experiment import final_returns

pytestmark = pytest.mark.slow


def train_seeds(env_name, config, hparams, num_seeds=8, **env_overrides):
    env, params = envs.make(env_name, **env_overrides)
    train = jax.jit(jax.vmap(ppo.make_train(config, env, params), in_axes=(0, None)))
    _, metrics = train(common.learning_keys(num_seeds), hparams)
    return env, params, final_returns(metrics)


def train_then_greedy(env_name, env_overrides, config, hparams, num_seeds):
    """Train ``num_seeds`` vmapped seeds and evaluate each one's greedy policy on 8
    episodes of at most 1,000 steps (Brax's length), in one compiled call:
    ``(metrics, greedy returns [num_seeds])``."""
    env, params = envs.make(env_name, **env_overrides)
    eval_env, _ = envs.make(env_name, autoreset=False, **env_overrides)
    train = ppo.make_train(config, env, params)

    def train_and_evaluate(key):
        state, metrics = train(key, hparams)
        act = ppo.make_policy(config, env, params, state)
        return metrics, evaluate(eval_env, params, act, jax.random.key(1), 8, 1000).mean()

    return jax.jit(jax.vmap(train_and_evaluate))(common.learning_keys(num_seeds))


def test_ppo_cartpole_500k():
    _, _, returns = train_seeds("gymnax:CartPole-v1", ppo.PPOConfig(), ppo.PPOHParams())
    common.report("PPO CartPole-v1 final return", returns.mean(), ">= 475")
    assert returns.mean() >= 475, returns


def test_ppo_fourrooms_within_5_percent_of_optimum():
    config = ppo.PPOConfig(num_envs=16, rollout_len=64, total_steps=300_000)
    env, params, returns = train_seeds("GridWorld-FourRooms", config, ppo.PPOHParams(lr=1e-3))
    raw = env.unwrapped
    optimum = float(params.goal_reward) - float(params.step_cost) * raw.shortest_path_length(params)
    common.report("PPO FourRooms final return", returns.mean(), f">= 0.95 * {optimum}")
    assert returns.mean() >= 0.95 * optimum, (returns, optimum)


def test_recurrent_ppo_solves_memory_chain_where_feed_forward_fails():
    config = ppo.PPOConfig(num_envs=32, rollout_len=32, total_steps=200_000, num_minibatches=4)
    hp = ppo.PPOHParams(lr=1e-3)
    name, length = "gymnax:MemoryChain-bsuite", {"memory_length": 5}
    _, _, feed_forward = train_seeds(name, config, hp, **length)
    _, _, recurrent = train_seeds(name, replace(config, gru_size=64), hp, **length)
    means = [feed_forward.mean(), recurrent.mean()]
    common.report("MemoryChain feed-forward, recurrent PPO", means, "|ff| < 0.2, >= 0.95")
    # Reward is +1 for recalling the first observation's bit, -1 otherwise.
    assert abs(feed_forward.mean()) < 0.2, feed_forward
    assert recurrent.mean() >= 0.95, recurrent


def test_ppo_continuous_pendulum_1m():
    # The ppo@gymnax:Pendulum-v1 preset, which holds these settings.
    config = ppo.PPOConfig(
        num_envs=16,
        rollout_len=128,
        total_steps=1_000_000,
        num_epochs=10,
        num_minibatches=32,
        normalize_obs=True,
        normalize_reward=True,
    )
    hp = ppo.PPOHParams(lr=1e-3, gamma=0.95, ent_coef=0.0)
    preset = presets.get("ppo", "gymnax:Pendulum-v1")
    assert preset.apply(ppo.PPOConfig(), ppo.PPOHParams()) == (config, hp)
    _, _, returns = train_seeds("gymnax:Pendulum-v1", config, hp)
    common.report("PPO Pendulum-v1 final return", returns.mean(), ">= -300")
    assert returns.mean() >= -300, returns


def test_ppo_brax_inverted_pendulum_2m():
    # Spring physics (the fastest Brax backend to compile); the greedy policy of every
    # seed is evaluated on 8 full episodes (1000 steps at most, reward 1 per step).
    # 2M steps and an entropy bonus of 0.01. With 1M and none, slow seeds were still
    # climbing at the end (greedy 931 / 964 / 863 on seed sets 0 / 1 / 2, seeds 632 to
    # 1000); on set 2 at 1M, gamma 0.97 / 0.995 / 0.999 gave 879 / 907 / 892,
    # squash=True 932 (880 on set 0), no lr decay 709, 256x256 890, 32 envs 792,
    # 10 epochs x 32 minibatches 722, the entropy bonus 897. 2M without the bonus:
    # 899 / 975 / 987, a set-0 seed stuck near 550 from its first updates; with it
    # 985.0 / 987.4 / 972.7, every seed >= 920.
    config = ppo.PPOConfig(
        num_envs=64,
        rollout_len=64,
        total_steps=2_000_000,
        num_epochs=4,
        num_minibatches=8,
        normalize_obs=True,
        normalize_reward=True,
    )
    hp = ppo.PPOHParams(lr=1e-3, gamma=0.99, ent_coef=0.01)
    spring = {"backend": "spring"}
    metrics, evals = train_then_greedy("brax:inverted_pendulum", spring, config, hp, 8)
    common.report("PPO brax inverted_pendulum greedy return", evals.mean(), ">= 900")
    assert evals.mean() >= 900, (evals, final_returns(metrics))


def test_ppo_brax_ant_preset_1_2m():
    # Issue 18's locomotion target: the ppo@brax:ant preset (spring physics, 1,228,800
    # env steps) reaches a greedy return of 1,500; brax.training's PPO reaches about
    # 2,250 on this budget and machine (experiments/bench_locomotion.py). One seed (the
    # issue's target; CI's time is short), evaluated greedily on 8 full episodes; every
    # seed measured so far, 11 of them, ended between 2,331 and 3,061.
    from jaxrl import presets

    preset = presets.get("ppo", "brax:ant")
    config, hp = preset.apply(ppo.PPOConfig(), ppo.PPOHParams())
    assert config.total_steps <= 1_228_800
    _, (greedy,) = train_then_greedy(preset.env, preset.env_params, config, hp, 1)
    common.report("PPO brax:ant preset greedy return", greedy, ">= 1500")
    assert greedy >= 1500, greedy
