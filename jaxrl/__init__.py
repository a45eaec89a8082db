"""jaxrl: end-to-end vectorized reinforcement learning in JAX.

Agents are function factories: a frozen config plus traced hyperparameters give
a pure ``train(key, hparams) -> (final_state, metrics)`` that callers ``jit``
and ``vmap``. The environment suite lives in the separate ``envs`` package.

``jaxrl.agents`` has every agent's record (``jaxrl.agents.get("ppo")``);
``jaxrl.load_run(DIR)`` loads a finished run directory (agent, config,
hyperparameters, summary and final state).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``jaxrl.load_run`` without importing jax when ``jaxrl`` is imported (start-up).
    if name == "load_run":
        from jaxrl.rundir import load_run

        return load_run
    raise AttributeError(f"module 'jaxrl' has no attribute {name!r}")
