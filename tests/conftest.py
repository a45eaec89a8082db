"""Test-wide JAX settings: catch silent broadcasting."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
