"""The sweep pipeline: spec -> stage graph -> edits, Tune trials, scoring -> tables."""
