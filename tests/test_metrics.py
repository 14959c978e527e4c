import math

import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from lightning_seg.metrics import SegmentationMetrics, scores_from_confusion


def test_scores_match_a_confusion_matrix_worked_by_hand() -> None:
    # 3 classes; 255 is ignored. Pixels (true -> pred):
    #   0->0 x2, 0->1 x1, 1->1 x2, 1->2 x1, 2->2 x0, plus two ignored pixels predicted as 2.
    target = torch.tensor([[0, 0, 0, 1, 1, 1, 255, 255]])
    preds = torch.tensor([[0, 0, 1, 1, 1, 2, 2, 2]])
    metric = SegmentationMetrics(3, ignore_index=255, class_names=["a", "b", "c"])
    metric.update(preds, target)
    assert metric.compute().tolist() == [[2, 1, 0], [0, 2, 1], [0, 0, 0]]
    scores = metric.compute_scores()
    # class a: tp 2, fp 0, fn 1 -> IoU 2/3, Dice 4/5, precision 1, recall 2/3
    assert scores["iou/a"].item() == pytest.approx(2 / 3)
    assert scores["dice/a"].item() == pytest.approx(4 / 5)
    assert scores["precision/a"].item() == pytest.approx(1.0)
    assert scores["recall/a"].item() == pytest.approx(2 / 3)
    # class b: tp 2, fp 1, fn 1 -> IoU 2/4
    assert scores["iou/b"].item() == pytest.approx(0.5)
    # class c: never true, predicted once (the ignored pixels do not count) -> IoU 0, recall undefined
    assert scores["iou/c"].item() == 0.0
    assert math.isnan(scores["recall/c"].item())
    assert scores["miou"].item() == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)


def test_a_class_absent_everywhere_is_left_out_of_the_mean() -> None:
    metric = SegmentationMetrics(3, class_names=["a", "b", "c"])
    metric.update(torch.tensor([[0, 1]]), torch.tensor([[0, 1]]))
    scores = metric.compute_scores()
    assert math.isnan(scores["iou/c"].item())
    assert scores["miou"].item() == 1.0


def test_iou_agrees_with_torchmetrics_jaccard_on_random_data() -> None:
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (4, 16, 16), generator=generator)
    target[:, :3] = 255
    preds = torch.randint(0, 5, (4, 16, 16), generator=generator)
    ours = SegmentationMetrics(5, ignore_index=255)
    reference = MulticlassJaccardIndex(5, average="none", ignore_index=255)
    for i in range(4):  # accumulated over batches, like a validation epoch
        ours.update(preds[i : i + 1], target[i : i + 1])
        reference.update(preds[i : i + 1], target[i : i + 1])
    iou = scores_from_confusion(ours.compute())["iou"]
    torch.testing.assert_close(iou.float(), reference.compute(), atol=1e-6, rtol=0)


def test_wrong_number_of_class_names_is_rejected() -> None:
    with pytest.raises(ValueError, match="2 class names"):
        SegmentationMetrics(3, class_names=["a", "b"])
