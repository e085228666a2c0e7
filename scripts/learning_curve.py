"""Does it learn? The RLPR paper's comparison in miniature on CPU (docs/learning_curve.md).

    python scripts/learning_curve.py            # every arm of both tasks (~1 h on 2 cores); resumable
    python scripts/learning_curve.py --quick    # tiny sizes, 2 steps per arm (the CI test)

Writes docs/results/learning_curve.json and .png (``--quick``: under the output folder). See
``rlpr.experiments.learning_curve`` for what runs.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages, before any installed copy

from rlpr.experiments.learning_curve import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
