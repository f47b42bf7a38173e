"""Every option of one build, typed and frozen, made once from the parsed command line."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, fields
from pathlib import Path

from .options import FULL_INT8_MODES

PROGRAM = "edge-classifier-build"


@dataclass(frozen=True)
class BuildOptions:
    """The build's command-line options by name (argparse's dest), and the command that gave them."""

    # data
    image_dir: Path | None
    data_dir: Path
    val_fraction: float
    val_dir: Path | None
    label_names: str | None
    train_limit: int | None
    test_limit: int | None
    # model
    architecture: str
    alpha: float
    resolution: int
    weights: str
    # training
    epochs: int
    batch_size: int
    learning_rate: float
    label_smoothing: float
    dropout: float
    no_augment: bool
    augmentation: str
    negatives: int
    head_epochs: int
    random_erasing: float
    bn_momentum: float | None
    seed: int
    nondeterministic: bool
    # quantization, pruning, distillation
    quantization: str
    qat_epochs: int
    qat_learning_rate: float
    prune_sparsity: float | None
    prune_epochs: int
    prune_learning_rate: float
    teacher: Path | None
    teacher_alpha: float | None
    teacher_architecture: str | None
    teacher_resolution: int | None
    teacher_epochs: int | None
    distill_alpha: float
    distill_temperature: float
    # output
    name: str
    model_version: str
    output_dir: Path
    calibration_images: int
    selftest_per_class: int
    float_twin: Path | None
    quiet: bool
    keras_cache: Path | None
    record: Path | None
    latency_runs: int
    fold_check_images: int
    eval_dir: Path | None
    transplant_check_images: int
    embedding_output: bool
    command: str  # how the build was invoked, for the manifest and the record

    @classmethod
    def from_namespace(cls, args: argparse.Namespace, argv: list[str]) -> BuildOptions:
        """The parsed arguments as typed options; a field without its argument is a programming error."""
        values = {f.name: getattr(args, f.name) for f in fields(cls) if f.name != "command"}
        return cls(**values, command=shlex.join([PROGRAM, *argv]))

    @property
    def distilling(self) -> bool:
        return self.teacher is not None or self.teacher_alpha is not None

    @property
    def full_int8(self) -> bool:
        return self.quantization in FULL_INT8_MODES

    @property
    def kind(self) -> str:
        """The model's kind as the manifest keys its metrics: int8 for every full-int8 mode (QAT included)."""
        return "int8" if self.full_int8 else self.quantization

    def technique_names(self) -> list[str]:
        """Short names of the techniques the build applies, in the order it applies them."""
        names = ["random-erasing"] if self.random_erasing else []
        if self.distilling:
            names.append("distillation")
        if self.prune_sparsity is not None:
            names.append("pruning")
        names.append(
            {"int8": "int8-ptq", "float32": "float32", "dynamic": "dynamic-range", "qat": "qat-int8"}[self.quantization]
        )
        return names
