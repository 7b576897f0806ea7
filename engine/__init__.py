"""Descent's engine: gradient descent in plain NumPy.

Activations, losses, models (forward and backward passes), optimizers, the training loop and
data generators. It imports NumPy and the standard library only, and knows nothing of HTTP,
jobs or databases: it takes and returns ndarrays and plain Python values.
"""
