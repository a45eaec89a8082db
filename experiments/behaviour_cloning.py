"""Behaviour cloning (and DAgger, ``--dagger-iterations N``) of the exact
value-iteration policy of a tabular env, many seeds in one compiled call.

    python experiments/behaviour_cloning.py --env GridWorld-FourRooms --out runs/bc
    python experiments/behaviour_cloning.py --env GridWorld-FourRooms --env-param slip=0.2 \
        --dagger-iterations 3 --out runs/dagger

Every ``BCConfig`` field and ``BCHParams`` value is a flag (``--help``). An update is
an iteration (the initial fit, then each DAgger round); its return is the learner's
greedy evaluation. ``summary.json`` adds ``expert_return_mean`` (the expert on the
same evaluation protocol, 512 episodes) and ``fraction_of_expert`` (final return /
expert return).

The expert is ``planning.value_iteration`` at discount 0.99 on the env's
``tabular_model``; to clone a trained agent instead, pass its ``make_policy`` as the
``expert`` of ``jaxrl.agents.bc.make_train`` in your own script.
"""

import jax

from jaxrl import experiment, planning
from jaxrl.agents import Agent, bc, tabular
from jaxrl.evaluate import episode_limit, evaluate

EXPERT_GAMMA = 0.99


def expert_policy(env, env_params):
    model = planning.tabular_model(env, env_params)
    solution = planning.value_iteration(model.P, model.R, EXPERT_GAMMA)
    return tabular.table_policy(env, env_params, solution.policy)


def make_train(config, env, env_params):
    return bc.make_train(config, env, env_params, expert_policy(env, env_params))


def expert_return(summary, config, env, env_params, final_state, hparams) -> dict:
    limit = episode_limit(env, env_params)
    act = expert_policy(env, env_params)
    returns = jax.jit(lambda key: evaluate(env, env_params, act, key, 512, limit))
    expert = float(returns(jax.random.key(12345)).mean())
    print(f"expert (value iteration) mean return: {expert:.4f}")
    return {
        "expert_return_mean": expert,
        "fraction_of_expert": summary["final_return_mean"] / expert if expert else None,
    }


if __name__ == "__main__":
    experiment.main(
        Agent(
            name="behaviour_cloning",
            description="behaviour cloning / DAgger of the value-iteration policy",
            Config=bc.BCConfig,
            HParams=bc.BCHParams,
            make_train=make_train,
            make_policy=bc.make_policy,
            default_env="GridWorld-FourRooms",
        ),
        extra_summary=expert_return,
    )
