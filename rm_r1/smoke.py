"""``python -m rm_r1.smoke``: RM-R1's GRPO stage with the preference reward on CPU in a few minutes.
The command lives in ``rm_r1.training.smoke``."""

import sys

from rm_r1.training.smoke import main

if __name__ == "__main__":
    sys.exit(main())
