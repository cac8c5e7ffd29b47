"""The benchmark runner, its command line and experiment tracking."""
