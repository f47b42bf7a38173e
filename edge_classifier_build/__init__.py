"""Workstation-side model build for edge-classifier: train, convert to full int8, evaluate, package."""
