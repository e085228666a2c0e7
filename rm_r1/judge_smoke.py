"""``python -m rm_r1.judge_smoke``: the judge-as-reward loop on CPU in a few minutes.
The command lives in ``rm_r1.as_reward.smoke``."""

import sys

from rm_r1.as_reward.smoke import main

if __name__ == "__main__":
    sys.exit(main())
