"""Regression tracking: compare two measurements of a suite (files, results folders, runs,
baselines), write a baseline into a repository, and plot a suite's history across revisions."""
