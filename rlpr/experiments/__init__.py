"""Experiments run with the project's trainer: ``learning_curve`` (the RLPR paper's comparison in miniature on CPU,
``python scripts/learning_curve.py``) and its seeded tasks (``tasks``)."""
