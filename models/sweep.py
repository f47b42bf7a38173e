#!/usr/bin/env python3
"""Build every optimization variant on the same data and seed (needs the `build` extra: TensorFlow)."""

import sys

from ecbuild.sweep import main

if __name__ == "__main__":
    sys.exit(main())
