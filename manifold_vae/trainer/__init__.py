"""The training loop and its parts: options, step backends, epoch callbacks.

:func:`~manifold_vae.training.fit` (one model) and :func:`~manifold_vae.ensemble.fit_ensemble`
(many models of one shape) are thin front ends over :func:`train`, which runs one loop over
step backends (:class:`SingleBackend`, :class:`StackedBackend`) with epoch callbacks
(:class:`LearningRateSchedule`, :class:`DecoderWarmup`, :class:`SaveCheckpoint`, the monitors
:class:`Validation` (held-out ELBO, early stopping), :class:`MetricsLog` and
:class:`TensorBoardLog`, or a user's :class:`EpochCallback`).
"""

from .backend import StepBackend, adam, check_device, resolve_device, stop_message
from .callbacks import (
    DecoderWarmup,
    EpochCallback,
    LearningRateSchedule,
    SaveCheckpoint,
    decoder_sigma,
    learning_rate,
)
from .config import History, Restarts, TrainConfig, check_sigma_start, resolve_config
from .loop import default_callbacks, train
from .monitoring import MetricsLog, TensorBoardLog, Validation
from .resume import (
    TrainingState,
    graceful_interrupts,
    interrupt_requested,
    read_training_state,
)
from .single import SingleBackend
from .stacked import StackedBackend

__all__ = [
    "DecoderWarmup",
    "EpochCallback",
    "History",
    "LearningRateSchedule",
    "MetricsLog",
    "Restarts",
    "SaveCheckpoint",
    "SingleBackend",
    "StackedBackend",
    "StepBackend",
    "TensorBoardLog",
    "TrainConfig",
    "TrainingState",
    "Validation",
    "adam",
    "check_device",
    "check_sigma_start",
    "decoder_sigma",
    "default_callbacks",
    "graceful_interrupts",
    "interrupt_requested",
    "learning_rate",
    "read_training_state",
    "resolve_config",
    "resolve_device",
    "stop_message",
    "train",
]
