"""Agents: one module per algorithm, each a config, hyperparameters and ``make_train``."""
