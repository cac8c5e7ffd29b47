#!/usr/bin/env python3
"""Thin launcher: ``python run_bench.py [run|describe|list] [options]`` (same as the ``emoaug`` command)."""

import sys

from emoaug.cli import main

if __name__ == "__main__":
    sys.exit(main())
