"""The harness both recipes (``rlpr``, ``rm_r1``) run in: everything around the algorithms that is not one recipe's.

* Entry points and config checks: ``config_paths`` (where the Hydra recipes are), ``config_check`` (every composed
  config against verl's own before Ray starts), ``preflight`` (GPUs, logger keys), ``task_runner`` (verl's classic
  task runner with a recipe's trainer class), ``verl_reward_call`` (what verl adds to a reward function's call).
* Output files and reporting: ``files`` (atomic writes, torn-line repair), ``rows`` (row files read and written),
  ``reporting`` (warning filters, metrics file, per-step table, curves, the closing summary; the CPU smoke command
  built on them is ``cpu_backend.smoke``), ``verl_patches`` (the one place verl's logger and printer are patched for
  that reporting).
* Talking to models: ``chat_client`` (OpenAI-compatible chat completions with retries), ``chat_server`` (a small
  OpenAI-compatible server of a transformers model: the judge of CPU smoke runs), ``generation`` (the generation
  backends both evaluations use: transformers, vLLM, an OpenAI-compatible server).

Nothing here imports ``rlpr``, ``rm_r1`` or ``cpu_backend``.
"""
