"""RLPR evaluation: validation grading with the benchmark registry and Avg@k, and the LLM judge client."""
