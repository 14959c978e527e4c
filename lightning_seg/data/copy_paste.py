"""Copy-paste of rare-class pixels between training images (Ghiasi et al., CVPR 2021, arXiv 2012.07177).

The paper's semantic-segmentation form: pixels of objects from one (augmented) image are pasted onto
another (augmented) image at the same positions, and the mask takes the pasted pixels' labels. Here the
pasted class is a rare one: it is drawn with the rare-class probabilities ``P(c) ∝ exp((1 − f_c)/T)``
(:mod:`lightning_seg.data.rare_class`), and the donor among the training images that hold it. Both images
go through the training pipeline independently (its random rescale is the paper's scale jitter).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from lightning_seg.data.rare_class import RareClassPicker
from lightning_seg.data.resumable import SEED_BOUND


class RareClassCopyPaste:
    """Paste one rare class's pixels from a donor image onto a training sample.

    Args:
        p: probability of pasting onto a sample.
        picker: the class and donor draws.
    """

    def __init__(self, p: float, picker: RareClassPicker) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"copy_paste_p must lie in [0, 1], got {p}")
        self.p, self.picker = p, picker

    def __call__(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        donor: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
        generator: torch.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(image, mask)`` with a donor's pixels of a drawn class pasted (with probability ``p``).

        Args:
            image: augmented ``H×W×3`` uint8.
            mask: its ``H×W`` train ids.
            donor: ``donor(i, seed)`` loads training sample ``i`` and augments it from ``seed``, returning
                ``(image, mask)``. Where the two sizes differ, the common top-left part is pasted.
            generator: source of every random choice (default: torch's global generator).

        Shape:
            image ``H×W×3`` and mask ``H×W`` in, the same out.
        """
        if self.p == 0 or float(torch.rand((), generator=generator)) >= self.p:
            return image, mask
        (chosen,), (index,) = self.picker.draw(1, generator)
        donor_image, donor_mask = donor(int(index), int(torch.randint(SEED_BOUND, (), generator=generator)))
        rows, cols = min(mask.shape[0], donor_mask.shape[0]), min(mask.shape[1], donor_mask.shape[1])
        paste = np.zeros(mask.shape, dtype=bool)
        paste[:rows, :cols] = donor_mask[:rows, :cols] == chosen
        if not paste.any():
            return image, mask  # the donor's crop missed the class
        image, mask = image.copy(), mask.copy()
        image[paste] = donor_image[:rows, :cols][paste[:rows, :cols]]
        mask[paste] = chosen
        return image, mask
