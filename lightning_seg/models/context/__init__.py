"""Attention and context networks on any smp/timm encoder: CCNet, EncNet (and their shared blocks)."""

from lightning_seg.models.context.ccnet import CCNet, CrissCrossAttention
from lightning_seg.models.context.encnet import EncNet

__all__ = ["CCNet", "CrissCrossAttention", "EncNet"]
