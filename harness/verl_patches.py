"""The one module that changes verl's globals for this project's reporting, only inside a ``with`` block, and puts
them back on the way out (``cpu_backend.verl_plugin`` is the other one, for verl and vLLM on CPU).

verl 0.9.1 offers no hook for either change:

* ``verl.utils.tracking.Tracking`` (verl/utils/tracking.py:38-186) is the logger every trainer builds in ``fit()``
  from ``trainer.logger``; its backends are fixed by name. ``tracking_to`` replaces the class by a subclass that
  prints a ``StepTable`` in place of the ``console`` backend, and writes a ``MetricsFile`` in place of the ``file``
  backend (which truncates ``./<project>/<experiment>.jsonl`` at every start, verl/utils/tracking.py:529-545, so a
  resumed run would lose its earlier steps).
* ``verl.trainer.ppo.ray_trainer.pprint`` (ray_trainer.py:26, ``from pprint import pprint``) prints the whole
  validation metrics dict before the first and after the last step (ray_trainer.py:1441 and :1812; ``RLPRTrainer``
  prints through the same name). ``no_validation_dict_prints`` drops those two prints, which the step table and the
  closing summary show readably; every other print passes through.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_VALIDATION_DICT = re.compile(r"(Initial|Final) validation metrics: ")


@contextmanager
def tracking_to(console: Any, file: Any) -> Iterator[None]:
    """While inside, every verl ``Tracking`` logs to ``file`` always (in place of verl's ``file`` backend), to
    ``console`` in place of verl's ``console`` backend when the config asks for ``console``, and to any other
    configured backend (tensorboard, wandb, ...) as verl would. ``console`` and ``file`` are ``Tracking`` backends
    (``log(data, step)``, ``finish()``)."""
    from verl.utils import tracking

    original = tracking.Tracking

    class ReportingTracking(original):
        def __init__(
            self,
            project_name: str,
            experiment_name: str,
            default_backend: str | list[str] = "console",
            config: Any = None,
        ) -> None:
            backends = [default_backend] if isinstance(default_backend, str) else list(default_backend)
            others = [b for b in backends if b not in ("console", "file")]
            super().__init__(project_name, experiment_name, default_backend=others, config=config)
            if "console" in backends:
                self.logger["console"] = console
            self.logger["file"] = file

    tracking.Tracking = ReportingTracking
    try:
        yield
    finally:
        tracking.Tracking = original


@contextmanager
def no_validation_dict_prints() -> Iterator[None]:
    """While inside, ``verl.trainer.ppo.ray_trainer.pprint`` leaves out the "Initial/Final validation metrics: {...}"
    lines and prints everything else as before."""
    from verl.trainer.ppo import ray_trainer

    original = ray_trainer.pprint

    def pprint(obj: object, *args: Any, **kwargs: Any) -> None:
        if isinstance(obj, str) and _VALIDATION_DICT.match(obj):
            return
        original(obj, *args, **kwargs)

    ray_trainer.pprint = pprint
    try:
        yield
    finally:
        ray_trainer.pprint = original
