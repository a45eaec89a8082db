"""Adapters that expose other JAX environment suites through the ``envs`` API."""
