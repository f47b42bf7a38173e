#!/usr/bin/env python3
"""Render models/REPORT.md and its plots from the sweep's results file (needs matplotlib)."""

import sys

from ecbuild.report import main

if __name__ == "__main__":
    sys.exit(main())
