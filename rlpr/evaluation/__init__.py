"""RLPR evaluation: validation grading, the benchmark registry with the Avg@k table, and the LLM judge client."""
