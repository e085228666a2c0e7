"""``python -m rm_r1.main``: RM-R1 training, SFT or GRPO of a judge, on verl's trainers.
The command lives in ``rm_r1.training.main``."""

from rm_r1.training.main import main

if __name__ == "__main__":
    main()
