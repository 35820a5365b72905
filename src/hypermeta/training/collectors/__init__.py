"""Collectors: how rollouts and evaluations are produced for each kind of environment.

`base` is the contract and the shared rules, `jax_collector` and `host_collector` the two
kinds, `registry` the table that picks one by the environment's class.
"""
