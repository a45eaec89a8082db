"""The optimizer factory every agent uses: global-norm clipping, then Adam, with an
optional linear learning-rate decay.

Built from optax pieces; ``learning_rate`` and ``max_grad_norm`` may be traced
hyperparameters (the schedule is plain arithmetic on them), so sweeps over them
are a ``vmap``. Note ``optax.clip_by_global_norm``, not ``optax.clip``
(element-wise), which is a known slip in other libraries.
"""

from __future__ import annotations

import jax
import optax


def make_optimizer(
    learning_rate: float | jax.Array,
    max_grad_norm: float | jax.Array | None = None,
    *,
    decay_steps: int | None = None,
    eps: float = 1e-5,
) -> optax.GradientTransformation:
    """``clip_by_global_norm(max_grad_norm)`` then ``adam``.

    Args:
        learning_rate: initial learning rate (traced or not).
        max_grad_norm: global-norm clip; None for no clipping.
        decay_steps: if given, decay the learning rate linearly to 0 over this many
            optimizer updates (static).
        eps: Adam's epsilon (1e-5 as in PPO implementations).
    """
    if decay_steps is not None:
        if int(decay_steps) < 1:
            raise ValueError(
                f"make_optimizer: decay_steps={decay_steps} is not allowed; it must be >= 1"
            )
        schedule = optax.linear_schedule(learning_rate, 0.0, int(decay_steps))
    else:
        schedule = learning_rate
    adam = optax.adam(schedule, eps=eps)
    if max_grad_norm is not None:
        adam = optax.chain(optax.clip_by_global_norm(max_grad_norm), adam)
    # One flat vector instead of a leaf per layer: far fewer small kernels per update.
    return optax.flatten(adam)
