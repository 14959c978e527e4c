"""PortraitNet's consistency constraint: one image's prediction under texture augmentation follows the other's."""

from __future__ import annotations

from torch import Tensor

from lightning_seg.losses.base import SegmentationLoss


class ConsistencyLoss(SegmentationLoss):
    """KL divergence from a teacher prediction to a student one (Zhang et al., PortraitNet, C&G 2019).

    PortraitNet predicts the same image twice, as augmented (``A``, the teacher) and with texture
    augmentation on top (``B``, the student), and asks ``B`` to agree with ``A``'s soft labels:
    ``T² · KL(softmax(A/T) ‖ softmax(B/T))`` per pixel, averaged over labelled pixels. The teacher's
    probabilities are soft labels: no gradient flows into them. Identical predictions give exactly 0.
    The paper weights this term α = 2 with T = 1; in a :class:`~lightning_seg.losses.CompositeLoss` the
    term reads two outputs (``input: [logits_texture, logits]``).

    Args:
        temperature: ``T``.
        ignore_index: ``None`` = the dataset's.

    Shape:
        student ``N×C×H×W``, teacher ``N×C×H×W``, mask ``N×H×W`` (int64) → scalar.
    """

    def __init__(self, temperature: float = 1.0, ignore_index: int | None = None) -> None:
        super().__init__(ignore_index)
        if temperature <= 0:
            raise ValueError(f"ConsistencyLoss: temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, student: Tensor, teacher: Tensor, target: Tensor) -> Tensor:
        if student.shape != teacher.shape or student.ndim != 4:
            raise ValueError(
                "ConsistencyLoss compares two N×C×H×W predictions, got "
                f"{tuple(student.shape)} and {tuple(teacher.shape)}"
            )
        valid = target != self.ignore_index
        log_student = (student / self.temperature).log_softmax(1)
        log_teacher = (teacher.detach() / self.temperature).log_softmax(1)
        divergence = (log_teacher.exp() * (log_teacher - log_student)).sum(1)
        return (divergence * valid).sum() / valid.sum().clamp_min(1) * self.temperature**2
