"""Cluster entry point:
    ray job submit --working-dir . -- python ray_jobs/sweep.py sweeps/paper.yaml
Connects to the cluster the job runs on (RAY_ADDRESS) and runs the sweep."""

import sys
from pathlib import Path

# The uploaded working directory's package, also where the cluster image has none.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from robust_edit.pipeline.run import main

if __name__ == "__main__":
    main(sys.argv[1:])
