"""The U-Net-family networks smp lacks: Attention U-Net and R2U-Net (U-Net and U-Net++ stay with SMPNet)."""

from lightning_seg.models.unet.attention_unet import AttentionUNet
from lightning_seg.models.unet.r2unet import R2UNet

__all__ = ["AttentionUNet", "R2UNet"]
