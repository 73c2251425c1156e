"""Evaluation: how a candidate is measured, so the choice of model is measured, not guessed.

``cv`` (stratified, grouped folds and the test carve-out), ``metrics`` (every score a candidate
gets), ``bootstrap`` (95 % intervals on the test set), ``leakage`` (the same patient or sample on
both sides of a split).
"""
