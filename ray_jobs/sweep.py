"""Cluster entry point:
    ray job submit --working-dir . -- python ray_jobs/sweep.py sweeps/paper.yaml
Connects to the cluster the job runs on (RAY_ADDRESS) and runs the sweep."""

import sys

from robust_edit.pipeline.run import main

if __name__ == "__main__":
    main(sys.argv[1:])
