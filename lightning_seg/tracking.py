"""Weights & Biases that never prompts, never hangs and never fails a run for want of a network.

W&B is used online only when an API key is set *and* the server accepts it; this is checked with one
HTTP request that times out in seconds (``wandb.init`` on its own waits about 100 s for an unreachable
server, then raises). Otherwise the run is logged offline, with one warning line, into the run's
``wandb/`` folder, from which ``wandb sync`` uploads it later. Checkpoints are logged as W&B artifacts
(``log_model``) only online.
"""

from __future__ import annotations

import base64
import json
import netrc
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from urllib.parse import urlparse

from lightning.pytorch.utilities import rank_zero_warn

DEFAULT_BASE_URL = "https://api.wandb.ai"
#: Seconds the key check waits for the W&B server before the run goes offline.
PROBE_TIMEOUT_S = 4.0


def base_url() -> str:
    """The W&B server this process talks to (``WANDB_BASE_URL``, else the public cloud)."""
    return os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL).rstrip("/")


def api_key(url: str) -> str | None:
    """The API key for ``url``: ``WANDB_API_KEY``, else the ``~/.netrc`` entry ``wandb login`` writes."""
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    try:
        entry = netrc.netrc().authenticators(urlparse(url).hostname or "")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return None
    return entry[2] if entry and entry[2] else None


def probe(url: str, key: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Ask the W&B server at ``url`` who owns ``key``; ``None`` if it answers with a user, else why not."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": "query Viewer { viewer { id } }"}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(f"api:{key}".encode()).decode(),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the user's W&B host)
            payload = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            return f"the API key was rejected (HTTP {error.code})"
        return f"the server answered HTTP {error.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"the server could not be reached within {timeout:g} s ({reason})"
    except ValueError:
        return "the server's answer was not W&B's (not JSON)"
    viewer = (payload.get("data") or {}).get("viewer") if isinstance(payload, dict) else None
    return None if viewer else "the API key belongs to no user"


def choose_mode() -> str:
    """Set ``WANDB_MODE`` for this process unless the user did, and return it (``online`` or ``offline``)."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    url = base_url()
    key = api_key(url)
    reason = "no API key is set (WANDB_API_KEY or `wandb login`)" if key is None else probe(url, key)
    mode = "offline" if reason else "online"
    if reason and key is not None:
        rank_zero_warn(f"W&B logs offline: {reason} at {url}; upload later with `wandb sync <run dir>/wandb`")
    os.environ["WANDB_MODE"] = mode
    return mode


def is_wandb_logger(config: Mapping | object) -> bool:
    """Whether a logger entry of a parsed config is a ``WandbLogger``."""
    class_path = config.get("class_path") if isinstance(config, Mapping) else getattr(config, "class_path", None)
    return isinstance(class_path, str) and class_path.rsplit(".", 1)[-1] == "WandbLogger"


def prepare_wandb_loggers(loggers: list) -> None:
    """Choose the W&B mode once for a run whose config has W&B loggers, and drop ``log_model`` offline.

    ``loggers`` are the parsed ``trainer.logger`` entries (jsonargparse namespaces or dicts); their
    ``init_args.log_model`` is set to ``False`` in place when W&B runs offline.
    """
    wandb_loggers = [config for config in loggers if is_wandb_logger(config)]
    if not wandb_loggers or choose_mode() == "online":
        return
    for config in wandb_loggers:
        init_args = config["init_args"] if isinstance(config, Mapping) else config.init_args
        if init_args is None:
            continue
        if isinstance(init_args, Mapping):
            if init_args.get("log_model"):
                init_args["log_model"] = False
        elif getattr(init_args, "log_model", False):
            init_args.log_model = False
