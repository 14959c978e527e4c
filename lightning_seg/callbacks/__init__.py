"""Callbacks: prediction writing and class-imbalance diagnostics."""

from lightning_seg.callbacks.class_distribution import ClassDistribution
from lightning_seg.callbacks.confusion_matrix import ConfusionMatrix
from lightning_seg.callbacks.gallery import PredictionGallery
from lightning_seg.callbacks.loss_breakdown import LossBreakdown
from lightning_seg.callbacks.nan_guard import NonFiniteGuard, NonFiniteLossError
from lightning_seg.callbacks.per_class_metrics import PerClassMetrics
from lightning_seg.callbacks.prediction_writer import PredictionWriter

__all__ = [
    "ClassDistribution",
    "ConfusionMatrix",
    "LossBreakdown",
    "NonFiniteGuard",
    "NonFiniteLossError",
    "PerClassMetrics",
    "PredictionGallery",
    "PredictionWriter",
]
