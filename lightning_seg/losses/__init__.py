"""Losses for semantic segmentation with rare classes.

Families: distribution-based (:mod:`.distribution`), region-based (:mod:`.region`, :mod:`.lovasz`), boundary-based
(:mod:`.boundary`, :mod:`.edge`), auxiliary/embedding (:mod:`.auxiliary`,
:mod:`.consistency`); :class:`CompositeLoss` sums scheduled terms
(:mod:`.schedules`); :mod:`.class_weights` turns class statistics into class weights.
"""

from lightning_seg.losses.auxiliary import DiscriminativeLoss, SemanticEncodingLoss
from lightning_seg.losses.base import ClassWeightedLoss, SegmentationLoss
from lightning_seg.losses.boundary import BoundaryLoss, DistanceMapLoss, HausdorffDTLoss
from lightning_seg.losses.class_weights import WEIGHTING_SCHEMES, compute_class_weights
from lightning_seg.losses.composite import CompositeLoss, LossOutput, LossTerm, as_composite, bind_losses
from lightning_seg.losses.consistency import ConsistencyLoss
from lightning_seg.losses.distance import signed_distance_map
from lightning_seg.losses.distribution import (
    CrossEntropyLoss,
    FocalLoss,
    OhemCrossEntropyLoss,
    PixelwiseLoss,
    TopKLoss,
)
from lightning_seg.losses.edge import EdgeLoss
from lightning_seg.losses.lovasz import LovaszSoftmaxLoss, lovasz_softmax
from lightning_seg.losses.region import (
    DiceLoss,
    FocalTverskyLoss,
    GeneralizedDiceLoss,
    RegionLoss,
    TverskyLoss,
)
from lightning_seg.losses.schedules import Constant, Cosine, LinearRamp, Rebalance, Step, WeightSchedule

__all__ = [
    "WEIGHTING_SCHEMES",
    "BoundaryLoss",
    "ClassWeightedLoss",
    "CompositeLoss",
    "ConsistencyLoss",
    "Constant",
    "Cosine",
    "CrossEntropyLoss",
    "DiceLoss",
    "DiscriminativeLoss",
    "DistanceMapLoss",
    "EdgeLoss",
    "FocalLoss",
    "FocalTverskyLoss",
    "GeneralizedDiceLoss",
    "HausdorffDTLoss",
    "LinearRamp",
    "LossOutput",
    "LossTerm",
    "LovaszSoftmaxLoss",
    "OhemCrossEntropyLoss",
    "PixelwiseLoss",
    "Rebalance",
    "RegionLoss",
    "SegmentationLoss",
    "SemanticEncodingLoss",
    "Step",
    "TopKLoss",
    "TverskyLoss",
    "WeightSchedule",
    "as_composite",
    "bind_losses",
    "compute_class_weights",
    "lovasz_softmax",
    "signed_distance_map",
]
