"""W&B never hangs and never prompts: a bad key or an unreachable server means offline, in seconds.

Every server here listens on the loopback interface and is started by the test itself.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lightning_seg import tracking

from .conftest import REPO, TINY_DATA


@contextmanager
def graphql_server(status: int, viewer: dict | None) -> Iterator[str]:
    """A loopback HTTP server answering every POST with ``status`` and ``{"data": {"viewer": viewer}}``."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            seen.append(self.headers.get("Authorization", ""))
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps({"data": {"viewer": viewer}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
    assert seen, "the probe never reached the server"


@contextmanager
def silent_server() -> Iterator[str]:
    """A loopback server that accepts connections and never answers (a hung proxy or server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_accepted_key_is_online() -> None:
    with graphql_server(200, {"id": "VXNlcjox"}) as url:
        assert tracking.probe(url, "k" * 40) is None


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_says_so(status: int) -> None:
    with graphql_server(status, None) as url:
        assert tracking.probe(url, "bogus") == f"the API key was rejected (HTTP {status})"


def test_key_of_no_user_is_refused() -> None:
    with graphql_server(200, None) as url:
        assert tracking.probe(url, "bogus") == "the API key belongs to no user"


def test_unreachable_and_silent_servers_time_out() -> None:
    assert "could not be reached" in tracking.probe(f"http://127.0.0.1:{closed_port()}", "k", timeout=0.5)
    with silent_server() as url:
        assert tracking.probe(url, "k", timeout=0.5).startswith("the server could not be reached within 0.5 s")


def test_key_from_netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert tracking.api_key("https://api.wandb.ai") is None
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password s3cret\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert tracking.api_key("https://api.wandb.ai") == "s3cret"
    assert tracking.api_key("http://wandb.example.org:8080") is None


def test_offline_drops_log_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")
    loggers = [
        {"class_path": "lightning.pytorch.loggers.WandbLogger", "init_args": {"log_model": True}},
        {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "x"}},
    ]
    tracking.prepare_wandb_loggers(loggers)
    assert os.environ["WANDB_MODE"] == "offline"
    assert loggers[0]["init_args"]["log_model"] is False


def test_online_keeps_log_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    loggers = [{"class_path": "WandbLogger", "init_args": {"log_model": True}}]
    with graphql_server(200, {"id": "VXNlcjox"}) as url:
        monkeypatch.setenv("WANDB_BASE_URL", url)
        tracking.prepare_wandb_loggers(loggers)
    assert os.environ["WANDB_MODE"] == "online"
    assert loggers[0]["init_args"]["log_model"] is True


def test_bogus_key_without_network_trains_offline_with_one_warning(tmp_path: Path) -> None:
    """The W&B quickstart with a wrong key and a server that never answers: offline, one line, exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB")}
    with silent_server() as url:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "lightning_seg.cli",
                "fit",
                "--config",
                str(REPO / "experiments" / "quickstart_wandb.yaml"),
                *TINY_DATA,
                "--trainer.max_epochs=1",
                "--trainer.limit_train_batches=1",
                "--trainer.limit_val_batches=1",
            ],
            cwd=tmp_path,
            env=env | {"HOME": str(tmp_path), "WANDB_API_KEY": "0" * 40, "WANDB_BASE_URL": url, "PYTHONWARNINGS": ""},
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "W&B logs offline" in line]
    assert len(warnings) == 1, result.stderr[-3000:]
    assert f"could not be reached within {tracking.PROBE_TIMEOUT_S:g} s" in warnings[0] and url in warnings[0]
    assert list(tmp_path.rglob("offline-run-*")), "no offline W&B run was written"


def test_resuming_continues_the_same_wandb_run(in_tmp: Path) -> None:
    """``fit --ckpt_path last`` logs into the W&B run of the first fit: same id in run.json and on disk."""
    import wandb

    from lightning_seg.cli import main

    config = ["--config", str(REPO / "experiments" / "quickstart_wandb.yaml"), *TINY_DATA]
    short = ["--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    main(["fit", *config, *short, "--trainer.max_epochs=1"])
    run = (in_tmp / "runs" / "quickstart_wandb" / "latest").resolve()
    first_id = json.loads((run / "run.json").read_text())["wandb_id"]
    wandb.finish()  # as when the first process exits
    main(["fit", *config, *short, "--trainer.max_epochs=2", "--ckpt_path", "last"])
    wandb.finish()
    assert (in_tmp / "runs" / "quickstart_wandb" / "latest").resolve() == run
    assert json.loads((run / "run.json").read_text())["wandb_id"] == first_id
    offline_runs = sorted(path.name for path in (run / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 2 and all(name.endswith(f"-{first_id}") for name in offline_runs)
