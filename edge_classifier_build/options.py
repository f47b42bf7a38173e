"""The build's optimization options (architecture, quantization, pruning, distillation): names and arguments.

No TensorFlow here: argument errors must come before the slow import.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

ARCHITECTURES = ("mobilenetv2", "mobilenetv3small")
QUANTIZATIONS = ("int8", "float32", "dynamic", "qat")
FULL_INT8_MODES = ("int8", "qat")
DISPLAY_NAMES = {"mobilenetv2": "MobileNetV2", "mobilenetv3small": "MobileNetV3-Small"}


def add_optimization_arguments(p: argparse.ArgumentParser) -> None:
    """Quantization, pruning and distillation options; the defaults give the plain full-int8 build."""
    q = p.add_argument_group("quantization")
    q.add_argument(
        "--quantization",
        choices=QUANTIZATIONS,
        default="int8",
        help="int8: full-int8 post-training quantization (default); float32: none; dynamic: int8 weights, "
        "float activations; qat: quantization-aware fine-tuning (tfmot), then full int8",
    )
    q.add_argument("--qat-epochs", type=int, default=2, help="quantization-aware fine-tuning epochs")
    q.add_argument("--qat-learning-rate", type=float, default=2e-4, help="starting learning rate of QAT")
    r = p.add_argument_group("pruning (magnitude pruning of Conv2D and Dense kernels, tfmot)")
    r.add_argument("--prune-sparsity", type=float, help="target share of zero weights, e.g. 0.5 (default: no pruning)")
    r.add_argument("--prune-epochs", type=int, default=2, help="fine-tuning epochs while pruning")
    r.add_argument("--prune-learning-rate", type=float, default=2e-4, help="starting learning rate while pruning")
    d = p.add_argument_group("distillation (student loss: alpha*CE + (1-alpha)*T^2*KL(teacher_T || student_T))")
    d.add_argument("--teacher", type=Path, help="teacher Keras model file; trained and saved there first if missing")
    d.add_argument("--teacher-alpha", type=float, help="width of a teacher trained in this run (distills when given)")
    d.add_argument("--teacher-architecture", choices=ARCHITECTURES, help="teacher backbone (default: --architecture)")
    d.add_argument("--teacher-resolution", type=int, help="teacher input size (default: --resolution)")
    d.add_argument("--teacher-epochs", type=int, help="teacher training epochs (default: --epochs)")
    d.add_argument("--distill-alpha", type=float, default=0.5, help="weight of the label loss (1: no teacher)")
    d.add_argument("--distill-temperature", type=float, default=4.0, help="softmax temperature T")
