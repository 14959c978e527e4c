"""One folder per run: derived once, used by every logger, checkpoint and callback, never shared."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from lightning import Callback

from lightning_seg import runs
from lightning_seg.cli import main
from lightning_seg.resume import LIGHTNING_NOT_RESUMABLE

from .conftest import QUICKSTART, REPO, TINY_DATA
from .test_cli import SHORT_FIT

WEIGHTED_CE = REPO / "experiments" / "losses" / "weighted_ce.yaml"  # a loss recipe: its own experiment
TRAINER = REPO / "experiments" / "trainer"
NO_VAL = [*SHORT_FIT, "--trainer.limit_val_batches=0"]


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_experiment_name_comes_from_the_config_files() -> None:
    assert runs.experiment_name([QUICKSTART]) == "quickstart"
    assert runs.experiment_name([QUICKSTART, WEIGHTED_CE]) == "quickstart+weighted_ce"
    assert runs.experiment_name([QUICKSTART, QUICKSTART]) == "quickstart"
    assert runs.experiment_name([QUICKSTART], run_name="ablation-3") == "ablation-3"
    assert runs.experiment_name([]) == "default"
    with pytest.raises(ValueError, match="must be a folder name"):
        runs.experiment_name([QUICKSTART], run_name="../elsewhere")


def test_runs_started_in_the_same_second_get_different_folders(tmp_path: Path) -> None:
    found: list[Path] = []

    def start() -> None:
        found.append(runs.derive_run("fit", [QUICKSTART], root_dir=tmp_path).directory)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 8
    assert all((folder / runs.RUN_FILE).is_file() for folder in found)


def test_one_run_writes_everything_into_its_own_folder(in_tmp: Path) -> None:
    main(["fit", "--config", str(QUICKSTART), *TINY_DATA, *SHORT_FIT])
    (run,) = [p for p in (in_tmp / "runs/quickstart").iterdir() if not p.is_symlink()]
    assert (in_tmp / "runs/quickstart/latest").resolve() == run.resolve()
    assert sorted(p.name for p in in_tmp.iterdir()) == ["runs"]  # nothing outside runs/quickstart/<run>
    written = files_under(run)
    assert {"config.yaml", "run.json", "checkpoints/last.ckpt", "csv/metrics.csv"} <= written
    assert any(name.startswith("tensorboard/events.out.tfevents") for name in written)
    assert any(name.startswith("diagnostics/per_class_metrics/") for name in written)
    assert json.loads((run / "run.json").read_text())["experiment"] == "quickstart"
    # The saved config starts a new run of the same experiment: no derived path is written into it.
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["run_name"] == "quickstart" and saved["trainer"]["default_root_dir"] is None
    assert {logger["init_args"]["save_dir"] for logger in saved["trainer"]["logger"]} == {None}


@pytest.mark.slow
def test_default_root_dir_moves_every_file(in_tmp: Path) -> None:
    elsewhere = in_tmp / "scratch" / "mine"
    main(["fit", "--config", str(QUICKSTART), *TINY_DATA, *SHORT_FIT, f"--trainer.default_root_dir={elsewhere}"])
    assert sorted(p.name for p in in_tmp.iterdir()) == ["scratch"]
    (run,) = [p for p in elsewhere.iterdir() if not p.is_symlink()]
    assert {"config.yaml", "checkpoints/last.ckpt", "csv/metrics.csv"} <= files_under(run)
    assert (elsewhere / "latest").resolve() == run.resolve()


def test_fast_dev_run_writes_no_checkpoint_and_moves_no_pointer(in_tmp: Path) -> None:
    main(["fit", "--config", str(QUICKSTART), *TINY_DATA, "--trainer.fast_dev_run=true"])
    assert not list(in_tmp.rglob("*.ckpt"))
    assert not (in_tmp / "runs/quickstart/latest").exists()
    assert [p.name.split("-")[0] for p in (in_tmp / "runs/quickstart").iterdir()] == ["fast_dev_run"]


def test_ckpt_path_last_is_the_newest_run_and_resuming_stays_in_it(in_tmp: Path) -> None:
    main(["fit", "--config", str(QUICKSTART), *TINY_DATA, *NO_VAL])
    first = (in_tmp / "runs/quickstart/latest").resolve()
    main(["fit", "--config", str(QUICKSTART), *TINY_DATA, *NO_VAL])
    second = (in_tmp / "runs/quickstart/latest").resolve()
    assert first != second

    cli = main(["test", "--config", str(QUICKSTART), *TINY_DATA, "--ckpt_path", "last"])
    tested = Path(cli.trainer.default_root_dir)
    assert tested.parent == second and tested.name.startswith("test-")
    assert cli.trainer.ckpt_path == str(second / "checkpoints/last.ckpt")

    cli = main(["fit", "--config", str(QUICKSTART), *TINY_DATA, *NO_VAL, "--trainer.max_epochs=2", "--ckpt_path=last"])
    assert Path(cli.trainer.default_root_dir) == second
    assert cli.trainer.current_epoch == 2 and cli.trainer.global_step == 4  # 2 steps per epoch, continued
    assert (second / "config.yaml").is_file() and (second / "config-1.yaml").is_file()  # the first config kept
    assert (in_tmp / "runs/quickstart/latest").resolve() == second


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ckpt_path", "last"], "--ckpt_path last: no run of this experiment yet"),
        (["--ckpt_path", "nowhere.ckpt"], "checkpoint nowhere.ckpt does not exist"),
        (["--run_name", "a/b"], "--run_name 'a/b' must be a folder name"),
    ],
)
def test_run_mistakes_are_one_line(
    in_tmp: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate", "--config", str(QUICKSTART), *TINY_DATA, *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2


@pytest.mark.parametrize("damage", ["truncated", "garbage", "flipped"])
def test_a_damaged_checkpoint_is_one_line(in_tmp: Path, capsys: pytest.CaptureFixture, damage: str) -> None:
    good = in_tmp / "good.ckpt"
    torch.save({"state_dict": {"weight": torch.arange(4096, dtype=torch.float32)}}, good)
    data = good.read_bytes()
    bad = in_tmp / "bad.ckpt"
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        bad.write_bytes(b"not a checkpoint at all\n" * 100)
    else:  # one byte changed inside the weights: only the CRC tells
        middle = len(data) // 2
        bad.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    runs.check_checkpoint(good)  # the intact file passes
    with pytest.raises(SystemExit) as info:
        main(["validate", "--config", str(QUICKSTART), *TINY_DATA, "--ckpt_path", str(bad)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "bad.ckpt" in err and ("corrupt" in err or "not a readable checkpoint" in err)
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2


def final_state(run: Path) -> tuple[dict, dict]:
    checkpoint = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    metrics = pd.read_csv(run / "csv/metrics.csv")
    last = metrics.dropna(subset=["val/miou"]).iloc[-1]
    return checkpoint["state_dict"], {k: last[k] for k in metrics.columns if k.startswith("val/")}


@pytest.mark.slow
def test_resuming_at_an_epoch_end_is_exact_and_runs_repeat(in_tmp: Path) -> None:
    """Deterministic CPU: 1 epoch, then resumed to 2, equals 2 epochs straight (weights and scores).

    The second run repeats the first epoch of the first from the same seed, so this also checks that
    the same seed and config give the same run.
    """
    fit = ["fit", "--config", str(QUICKSTART), *TINY_DATA, *SHORT_FIT, "--trainer.deterministic=true"]
    cli = main([*fit, "--trainer.max_epochs=2"])
    weights, scores = final_state(Path(cli.trainer.default_root_dir))
    main(fit)
    cli = main([*fit, "--trainer.max_epochs=2", "--ckpt_path", "last"])
    assert cli.trainer.global_step == 4
    resumed_weights, resumed_scores = final_state(Path(cli.trainer.default_root_dir))
    assert resumed_weights.keys() == weights.keys()
    for key, value in resumed_weights.items():
        torch.testing.assert_close(value, weights[key], rtol=1e-5, atol=1e-6, msg=key)
    assert resumed_scores == pytest.approx(scores, rel=1e-5, nan_ok=True)


class SignalAtStep(Callback):
    """Sends this process SIGUSR1 after optimizer step ``step``, as a scheduler's pre-emption would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGUSR1)


def test_resuming_mid_epoch_is_exact(in_tmp: Path) -> None:
    """Deterministic CPU, 2 epochs of 4 batches: stopped by a signal in the second epoch, then resumed
    from the interrupt checkpoint, the run ends with the weights and scores of the uninterrupted one."""
    data = [*TINY_DATA, "--data.init_args.num_train=16", "--trainer.limit_val_batches=1"]
    fit = ["fit", "--config", str(QUICKSTART), *data, "--trainer.max_epochs=2", "--trainer.deterministic=true"]
    cli = main(fit)
    assert cli.trainer.global_step == 8
    weights, scores = final_state(Path(cli.trainer.default_root_dir))
    stopper = {"class_path": f"{__name__}.SignalAtStep", "init_args": {"step": 5}}
    with pytest.raises(SystemExit) as info:
        main([*fit, f"--trainer.callbacks+={json.dumps(stopper)}"])
    assert info.value.code == 128 + signal.SIGUSR1
    (interrupt,) = (in_tmp / "runs/quickstart/latest/checkpoints").glob("interrupted-*.ckpt")
    # Saved at the end of step 5 or 6 (the callbacks' order decides): inside the second epoch.
    assert interrupt.name in {"interrupted-epoch1-step5.ckpt", "interrupted-epoch1-step6.ckpt"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = main([*fit, "--ckpt_path", "last"])
    assert not [w for w in caught if LIGHTNING_NOT_RESUMABLE in str(w.message)]  # it is resumable
    assert cli.trainer.global_step == 8
    resumed_weights, resumed_scores = final_state(Path(cli.trainer.default_root_dir))
    for key, value in resumed_weights.items():
        torch.testing.assert_close(value, weights[key], rtol=1e-5, atol=1e-6, msg=key)
    assert resumed_scores == pytest.approx(scores, rel=1e-5, nan_ok=True)


@pytest.mark.parametrize("name", ["gpu", "ddp", "slurm", "torchrun"])
def test_trainer_configs_parse_and_do_not_rename_the_experiment(name: str, capsys: pytest.CaptureFixture) -> None:
    config = TRAINER / f"{name}.yaml"
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(QUICKSTART), "--config", str(config), "--print_config"])
    assert info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)["trainer"]
    for key, value in yaml.safe_load(config.read_text())["trainer"].items():
        if key != "plugins":
            assert printed[key] == value, key
    assert runs.experiment_name([QUICKSTART, config]) == "quickstart"


def test_a_checkpoint_saved_on_an_exception_never_carries_a_stale_score(tmp_path: Path) -> None:
    from lightning import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint

    scored = ModelCheckpoint(monitor="val/miou", filename="{epoch}-{val/miou:.3f}", save_on_exception=True)
    plain = ModelCheckpoint(save_on_exception=True)
    trainer = Trainer(callbacks=[scored, plain], logger=False, default_root_dir=tmp_path)
    run = runs.derive_run("fit", [QUICKSTART], root_dir=tmp_path)
    with pytest.warns(UserWarning, match="stale val/miou"):
        runs.configure_trainer(trainer, run)
    assert not scored.save_on_exception and plain.save_on_exception
    assert scored.dirpath == str((run.directory / "checkpoints").resolve())


def test_random_states_survive_a_weights_only_checkpoint_load() -> None:
    import io
    import random

    import numpy as np

    from lightning_seg.resume import collect_rng_states, restore_rng_states

    buffer = io.BytesIO()
    torch.save(collect_rng_states(), buffer)
    expected = (random.random(), float(np.random.rand()), torch.rand(3).tolist())
    buffer.seek(0)
    restore_rng_states(torch.load(buffer, weights_only=True))  # what LightningCLI's --ckpt_path reads
    assert (random.random(), float(np.random.rand()), torch.rand(3).tolist()) == expected


def test_last_is_the_newest_checkpoint_of_the_newest_run_even_without_the_link(tmp_path: Path) -> None:
    older = runs.derive_run("fit", [QUICKSTART], root_dir=tmp_path).directory
    newer = runs.derive_run("fit", [QUICKSTART], root_dir=tmp_path).directory
    runs.point_latest(tmp_path, newer)
    runs.derive_run("test", [QUICKSTART], root_dir=tmp_path)  # not a training run
    for run in (older, newer):
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "last.ckpt").write_bytes(b"epoch end")
    interrupted = newer / "checkpoints" / "interrupted-epoch3-step70.ckpt"
    interrupted.write_bytes(b"later")
    os.utime(interrupted, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert runs.resolve_checkpoint("last", tmp_path) == str(interrupted)
    (tmp_path / runs.LATEST).unlink()  # a file system without symbolic links
    assert runs.resolve_checkpoint("last", tmp_path) == str(interrupted)
    assert runs.resolve_checkpoint("other.ckpt", tmp_path) == "other.ckpt"
