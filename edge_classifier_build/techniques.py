"""The techniques one build applies (training, pruning, QAT, distillation), their options checked before any data."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge_classifier.errors import InputError

from .build_options import BuildOptions

if TYPE_CHECKING:
    from .distill import DistillOptions
    from .prune import PruneOptions
    from .qat import QatOptions
    from .train import TrainOptions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Techniques:
    """The option objects of the techniques a build uses; None for a technique it does not use."""

    train: TrainOptions
    prune: PruneOptions | None = None
    qat: QatOptions | None = None
    distill: DistillOptions | None = None
    teacher: TrainOptions | None = None  # a teacher trained in this run (--teacher-alpha), else None


def check_techniques(options: BuildOptions) -> Techniques:
    """Every option checked before data is loaded; returns the option objects of the techniques used."""
    # These modules import TensorFlow: imported only once the command line itself is known to be good.
    from . import distill, prune, qat, train

    train_options = train.TrainOptions(
        alpha=options.alpha,
        resolution=options.resolution,
        epochs=options.epochs,
        batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        label_smoothing=options.label_smoothing,
        dropout=options.dropout,
        weights=options.weights,
        seed=options.seed,
        augment=not options.no_augment,
        random_erasing=options.random_erasing,
        bn_momentum=options.bn_momentum,
        architecture=options.architecture,
        augmentation=options.augmentation,
        head_epochs=options.head_epochs,
        negatives=options.negatives,
    )
    train.check_options(train_options)
    prune_options: PruneOptions | None = None
    qat_options: QatOptions | None = None
    if options.prune_sparsity is not None:
        prune_options = prune.PruneOptions(options.prune_sparsity, options.prune_epochs, options.prune_learning_rate)
        prune.check_prune_options(prune_options)
    if options.quantization == "qat":
        qat_options = qat.QatOptions(options.qat_epochs, options.qat_learning_rate)
        qat.check_qat_options(qat_options, options.architecture)
    distill_options: DistillOptions | None = None
    teacher: TrainOptions | None = None
    if options.distilling:
        distill_options = distill.DistillOptions(options.distill_alpha, options.distill_temperature)
        distill.check_distill_options(distill_options)
        teacher = teacher_options(options, train_options)
    return Techniques(train_options, prune_options, qat_options, distill_options, teacher)


def teacher_options(options: BuildOptions, train_options: TrainOptions) -> TrainOptions | None:
    """The options of a teacher trained in this run, or None when it is loaded from --teacher (which must exist)."""
    from . import train
    from .trainstage import teacher_options_from

    if options.teacher_alpha is None:
        if options.teacher is None or not options.teacher.is_file():
            raise InputError(f"--teacher {options.teacher} does not exist; add --teacher-alpha to train one there")
        return None
    teacher = teacher_options_from(
        train_options, options.teacher_architecture, options.teacher_alpha, options.teacher_resolution,
        options.teacher_epochs,
    )  # fmt: skip
    train.check_options(teacher)
    return teacher
