"""RLPR data: source datasets to verl rows, checks and reading of rows, the chat prompts (and the bundled sample)."""
