"""Searching: a plan in, scored candidates in the study database out.

``plan`` (what a search is, serialisable) -> ``prepare`` (load, carve the test set, folds,
leakage checks, spec: once) -> ``objective`` (one candidate: k folds of ``training``) run by
``study`` (Optuna, budget, retries) in this process or in ``workers`` on ``devices`` ->
``refit`` (the best on all training data, scored on the locked test set).
"""
