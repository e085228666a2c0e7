"""In-process CPU backend for verl worker groups (smoke runs and tests only; real training uses verl's Ray/vLLM workers)."""
