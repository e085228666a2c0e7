"""``python -m rm_r1.evaluate``: evaluate a judge on RewardBench, RM-Bench or RMB.
The command lives in ``rm_r1.evaluation.evaluate``."""

import sys

from rm_r1.evaluation.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
