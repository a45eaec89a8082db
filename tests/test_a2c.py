"""A2C: the loss on hand-made inputs, bad configs, probes, and (slow) CartPole.
The contract every agent keeps is tested in test_agent_contract.py."""

import dataclasses

import agents_common as common
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.agents import a2c

PROBE_CONFIG = a2c.A2CConfig(num_envs=8, rollout_len=8, total_steps=8 * 8 * 300)
PROBE_HP = a2c.A2CHParams(lr=3e-3, gamma=0.9, ent_coef=0.0)


def toy_batch(advantage, target):
    adv = jnp.asarray(advantage, jnp.float32)
    return a2c.Batch(jnp.zeros((2, 1)), jnp.array([1, 1]), adv, jnp.asarray(target, jnp.float32))


def test_zero_advantage_gives_zero_policy_gradient():
    hp = a2c.A2CHParams(ent_coef=0.0, vf_coef=0.5)
    grads, stats = jax.grad(a2c.a2c_loss, has_aux=True)(
        common.TOY, common.toy_apply, toy_batch([0.0, 0.0], [3.0, 3.0]), hp
    )
    np.testing.assert_allclose(grads["logits"], 0.0)
    # value loss: 0.5 * (1 - 3)^2 = 2; its gradient vf_coef * (V - target) = -1
    np.testing.assert_allclose(stats["value_loss"], 2.0)
    np.testing.assert_allclose(grads["value"], -1.0)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_policy_gradient_step_follows_advantage_sign(sign):
    hp = a2c.A2CHParams(ent_coef=0.0, vf_coef=0.0)
    batch = toy_batch([sign, sign], [1.0, 1.0])
    grads, _ = jax.grad(a2c.a2c_loss, has_aux=True)(common.TOY, common.toy_apply, batch, hp)
    # d(-A log softmax(l)_1)/dl = -A (onehot(1) - [0.5, 0.5]) = -A [-0.5, 0.5]
    np.testing.assert_allclose(grads["logits"], [0.5 * sign, -0.5 * sign], rtol=1e-6)
    stepped = jax.tree.map(lambda p, g: p - 0.1 * g, common.TOY, grads)
    new_prob = jax.nn.softmax(stepped["logits"])[1]
    assert (new_prob - 0.5) * sign > 0


def test_entropy_bonus_pushes_towards_uniform():
    params = {"logits": jnp.array([0.0, 2.0]), "value": jnp.array(1.0)}
    hp = a2c.A2CHParams(ent_coef=1.0, vf_coef=0.0)
    grads, _ = jax.grad(a2c.a2c_loss, has_aux=True)(
        params, common.toy_apply, toy_batch([0.0, 0.0], [1.0, 1.0]), hp
    )
    assert grads["logits"][1] > 0 > grads["logits"][0]  # descent lowers the larger logit


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_envs": 0}, "A2CConfig.num_envs=0 is not allowed"),
        ({"rollout_len": -1}, "A2CConfig.rollout_len=-1 is not allowed"),
        ({"total_steps": 100}, "A2CConfig.total_steps=100 is less than one rollout"),
        ({"advantage": "td"}, "A2CConfig.advantage='td' is not allowed"),
        ({"activation": "sigmoid"}, "A2CConfig.activation='sigmoid' is not allowed"),
    ],
)
def test_bad_configs_raise_before_compiling(kwargs, message):
    with pytest.raises(ValueError, match=message):
        a2c.A2CConfig(**kwargs)


def test_bad_hparams_raise():
    with pytest.raises(ValueError, match=r"A2CHParams.gamma=1.5 is not allowed"):
        a2c.A2CHParams(gamma=1.5).validate()
    with pytest.raises(ValueError, match=r"A2CHParams.lr=0"):
        a2c.A2CHParams(lr=0.0).validate()


@pytest.fixture(scope="module")
def probe_runs():
    # n-step returns on Probe-1: the rollout end and the time limit both bootstrap.
    nstep = dataclasses.replace(PROBE_CONFIG, advantage="nstep")
    runs = {i: (i, nstep if i == 1 else PROBE_CONFIG) for i in range(1, 6)}
    return common.train_probes(a2c, runs, PROBE_HP)


def test_probe1_value_bootstraps_through_truncation(probe_runs):
    common.check_probe1_value(probe_runs[1], atol=1.0)


def test_probe2_value_uses_observation(probe_runs):
    common.check_probe2_value(probe_runs[2], atol=0.2)


def test_probe3_value_discounts(probe_runs):
    common.check_probe3_value(probe_runs[3], atol=0.15)


def test_probe4_and_5_learn_the_best_action(probe_runs):
    common.check_probe4_and_5_actions(probe_runs[4], probe_runs[5], min_prob=0.9)


def test_probe4_episodes_last_one_step(probe_runs):
    metrics = probe_runs[4].metrics
    assert (metrics["episodes"] == PROBE_CONFIG.batch_size).all()


@pytest.mark.slow
def test_cartpole_500k_steps():
    common.check_cartpole_final_return(a2c, a2c.A2CConfig(), a2c.A2CHParams(), minimum=400)
