"""Building the package's C++ sources (``w2vjax/kernels/*.cc``) into shared libraries on first use.

One compiler invocation per source, cached in a directory keyed by the source, the compiler and
its flags, the extra key parts (jaxlib's version for the XLA FFI kernel) and the CPU
(``$W2VJAX_CACHE``, else ``~/.cache/w2vjax``), written atomically so concurrent runs share it.
The compiler is ``$CXX``, else ``g++``; without one, callers get the reason and keep their
Python or XLA path.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Sequence

KERNELS = Path(__file__).resolve().parent / "kernels"


def cpu_id() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))][:2]
        return "".join(lines)
    except OSError:
        return platform.processor()


def cache_dir() -> Path:
    root = os.environ.get("W2VJAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "w2vjax")
    return Path(root)


def build(source: Path, flags: Sequence[str], key_parts: Sequence[str] = ()) -> tuple[Optional[Path], str]:
    """``(path of the built library, '')`` or ``(None, why not)``."""
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        return None, f"no C++ compiler ({cxx}) on PATH"
    key = hashlib.sha256(b"\0".join([source.read_bytes(), " ".join((cxx, *flags)).encode(),
                                     *(p.encode() for p in key_parts), cpu_id().encode()])).hexdigest()[:16]
    lib = cache_dir() / f"{source.stem}-{key}.so"
    if lib.exists():
        return lib, ""
    try:
        lib.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=lib.parent)
        os.close(fd)
        done = subprocess.run([cxx, *flags, str(source), "-o", tmp], capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            os.unlink(tmp)
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            return None, f"compiling {source.name} failed: {last}"
        os.replace(tmp, lib)  # atomic: a concurrent build or reader sees all or nothing
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"building {source.name} failed: {e}"
    return lib, ""
