#!/usr/bin/env python3
"""Build an edge-classifier model on a workstation (needs the `build` extra: TensorFlow)."""

import sys

from ecbuild.cli import main

if __name__ == "__main__":
    sys.exit(main())
