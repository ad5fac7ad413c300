"""What a run needs to be reproduced: resolved settings, package versions, commit, corpus hash,
devices.  Written into ``config.json`` (``resolved``) and ``summary.json`` (``environment``,
``corpus``) by :func:`w2vjax.train.train_and_evaluate`.
"""

from __future__ import annotations

import os
import subprocess
from importlib import metadata as importlib_metadata
from typing import Any, Optional

from .config import Config

PACKAGES = ("w2vjax", "jax", "jaxlib", "optax", "orbax-checkpoint", "numpy")


def resolved_settings(cfg: Config, engine) -> dict[str, Any]:
    """The values a run used for the settings whose default depends on the model or the
    machine (the config sections keep ``null`` for "default", so a rerun on another platform
    resolves them again)."""
    return {"lr": cfg.lr, "min_lr": cfg.lr * cfg.train.min_lr_ratio, "batch_size": cfg.batch_size,
            "row_update_cap": cfg.row_cap, "threads": engine.threads, "engine": engine.name,
            "device_windows": engine.device_windows, "cpu_kernel": engine.name == "cpu_kernel",
            "center_windows": cfg.windows}


def package_versions() -> dict[str, Optional[str]]:
    """Installed versions of w2vjax and the libraries that shape its results (None: not installed)."""
    out: dict[str, Optional[str]] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    if out["w2vjax"] is None:  # run from a checkout that is not installed
        from . import __version__
        out["w2vjax"] = __version__
    return out


def git_commit() -> Optional[str]:
    """The commit of the checkout this package is imported from (``+dirty`` with uncommitted
    changes), or None outside a git checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(os.path.join(root, ".git")):
        return None
    try:
        run = lambda *a: subprocess.run(["git", "-C", root, *a], capture_output=True, text=True,  # noqa: E731
                                        timeout=10, check=True).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no", "--", "w2vjax")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def corpus_info(path: str) -> dict[str, Any]:
    """The corpus file's path, size and sha256 (of its bytes as stored, compressed or not)."""
    from .prepare import file_sha256
    return {"path": os.path.abspath(path), "bytes": os.path.getsize(path), "sha256": file_sha256(path)}


def environment() -> dict[str, Any]:
    """Versions, commit and the devices the run saw."""
    import jax
    devices = jax.devices()
    return {"versions": package_versions(), "git_commit": git_commit(), "platform": devices[0].platform,
            "device_kind": devices[0].device_kind, "device_count": jax.device_count(),
            "local_device_count": jax.local_device_count(), "process_count": jax.process_count()}
