"""``python -m rm_r1.judge_main``: GRPO of a policy rewarded by an RM-R1 judge.
The command lives in ``rm_r1.as_reward.main``."""

from rm_r1.as_reward.main import main

if __name__ == "__main__":
    main()
