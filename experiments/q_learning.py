"""Tabular Q-learning (``--rule sarsa`` or ``expected_sarsa`` for SARSA and Expected
SARSA) on a registered env with a discrete state index, thousands of learners in
one compiled call.

    python experiments/q_learning.py --env GridWorld-FourRooms --num-seeds 64 --out runs/ql

Every ``TabularConfig`` field and ``TabularHParams`` value is a flag (``--help``).
Where the env has a tabular model, ``summary.json`` also compares each learner
with the exact solution (``planning.value_iteration`` at the run's gamma):
``optimal_value_at_start`` (V*), ``greedy_value_at_start_per_seed`` (the exact
discounted value of each learner's greedy policy, by ``planning.policy_evaluation``)
and ``q_error_max_per_seed`` (max |Q - Q*| over the states the learner visited).
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import experiment, planning
from jaxrl.agents import tabular


def exact_comparison(summary, config, env, env_params, final_state, hparams) -> dict:
    if getattr(env, "tabular_model", None) is None:
        return {}
    model = env.tabular_model(env_params)
    gamma = float(hparams.gamma)
    if gamma >= 1:
        return {}
    solution = planning.value_iteration(model.P, model.R, gamma)
    q = final_state.q  # [seeds, S, A]
    greedy = jnp.argmax(q, axis=-1).astype(jnp.int32)
    values = jax.vmap(lambda p: planning.policy_evaluation(model.P, model.R, gamma, p).V)(greedy)
    start = int(getattr(model, "start_index", getattr(model, "initial_state", 0)))
    visited = np.asarray(jnp.any(q != 0, axis=-1))  # states whose row was ever updated
    error = np.abs(np.asarray(q - solution.Q[None])).max(axis=-1)
    return {
        "optimal_value_at_start": float(solution.V[start]),
        "greedy_value_at_start_per_seed": np.asarray(values[:, start]).tolist(),
        "q_error_max_per_seed": np.where(visited, error, 0.0).max(axis=-1).tolist(),
    }


if __name__ == "__main__":
    experiment.main(tabular.AGENT, extra_summary=exact_comparison)
