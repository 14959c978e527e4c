"""Attention and context networks on any smp/timm encoder: CCNet, EncNet, DFN, GALDNet (shared blocks in blocks.py)."""

from lightning_seg.models.context.ccnet import CCNet, CrissCrossAttention
from lightning_seg.models.context.dfn import DFN
from lightning_seg.models.context.encnet import EncNet
from lightning_seg.models.context.galdnet import GALDNet

__all__ = ["CCNet", "DFN", "CrissCrossAttention", "EncNet", "GALDNet"]
