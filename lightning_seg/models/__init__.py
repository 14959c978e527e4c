"""Segmentation networks. Every network maps ``N×3×H×W`` images to ``{"logits": N×C×H×W, ...}``."""

from lightning_seg.models.context import CCNet, EncNet
from lightning_seg.models.smp_net import SMPNet

__all__ = ["CCNet", "EncNet", "SMPNet"]
