"""jaxrl: end-to-end vectorized reinforcement learning in JAX.

Agents are function factories: a frozen config plus traced hyperparameters give
a pure ``train(key, hparams) -> (final_state, metrics)`` that callers ``jit``
and ``vmap``. The environment suite lives in the separate ``envs`` package.
"""

__version__ = "0.1.0"
