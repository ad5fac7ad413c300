"""A floor on a GPU micro-step's time, from the counts of ``accelerator_compile.py``'s reports.

An ESTIMATE under stated assumptions, not a measurement: nothing was run. Each kernel of a
micro-step runs after the one before it (they depend on each other), and takes at least
``--kernel-us`` (launch gap plus a small kernel's own run; CUDA-graph launches on a recent GPU are
a few microseconds) and at least its estimated bytes over the device's memory bandwidth (from the
target description; HBM, as if nothing stayed in L2), so

    micro-step >= sum over kernels of max(kernel_us, bytes_k / bandwidth)

and raw words/s <= raw words per micro-step / that.  A kernel's bytes are the report's estimate
(``details.kernels``; a Pallas kernel's from its jaxpr, ``details.pallas_kernels``, every lane
issued).  What it leaves out: atomic contention on hot rows, caches, occupancy, and the host
(device windows make the host's share small).  One-device reports only.

    python benchmarks/roofline.py benchmarks/results/accelerator_compile_after/h200_*/report.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys


def bandwidth_of(report: dict, given: float | None) -> float:
    """Bytes/s: ``given``, else the target description's ``memory_bandwidth``."""
    if given:
        return given
    src = report.get("target_source") or ""
    if os.path.exists(src):
        m = re.search(r"memory_bandwidth:\s*(\d+)", open(src).read())
        if m:
            return float(m.group(1))
    raise SystemExit(f"no memory bandwidth for {report.get('target')}: give --bandwidth BYTES_PER_S")


def kernel_bytes(report: dict, live: bool = False) -> list[int]:
    """The bytes of each kernel and copy a micro-step launches (once per launch); ``live``: a Pallas
    report's fused update with its masked accesses replaced by the kernel's design for live lanes
    (each row read once and added once: 1.5x the rows touched)."""
    d = report["details"]
    skip = set(d.get("kernels_only_in_hlo", ()))
    pallas = list(d.get("pallas_kernels", ()))
    per = report["per_micro_step"]
    live_rows = int(1.5 * report.get("rows_touched_bytes_per_raw_word", 0) * per["raw_words_per_micro_step"])
    out = []
    for k in d["kernels"] + d.get("copies", []):  # a copy is a launch too (a whole table's, say)
        if k["name"] in skip or re.sub(r"[.-]", "_", k["name"]) in skip:
            continue
        b = k["bytes"]
        if k["op"] == "custom-call" and "pallas_call" in k["name"] and pallas:
            p = pallas.pop(0)
            b = p["bytes"] - p["masked_bytes"] + live_rows if live and "update" in p["name"] else p["bytes"]
        out += [b] * int(k.get("times", 1))
    return out


def floor(report: dict, kernel_us: float, bandwidth: float, live: bool = False) -> dict:
    ks = kernel_bytes(report, live)
    t = sum(max(kernel_us * 1e-6, b / bandwidth) for b in ks)
    raw = report["per_micro_step"]["raw_words_per_micro_step"]
    return {"kernels": len(ks), "bytes": sum(ks), "micro_step_us": t * 1e6, "raw_words_per_s": raw / t}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reports", nargs="+", help="report.json files (globs too)")
    p.add_argument("--kernel-us", default="1,2,4", help="assumed least time per kernel, microseconds (a list)")
    p.add_argument("--bandwidth", type=float, default=None, help="bytes/s (default: the target description's)")
    args = p.parse_args(argv)
    files = [f for pat in args.reports for f in (sorted(glob.glob(pat)) or [pat])]
    us = [float(x) for x in args.kernel_us.split(",")]
    print("| report | engine | batch | raw words / micro-step | kernels | est. MB / micro-step | bandwidth floor us | "
          + " | ".join(f"ceiling M raw words/s at {u:g} us a kernel" for u in us)
          + " | Pallas, live lanes by design: MB, ceilings |")
    print("|---|---|---|---|---|---|---|" + "---|" * (len(us) + 1))
    for f in files:
        try:
            r = json.load(open(f))
        except (OSError, ValueError) as e:
            print(f"{f}: not a report ({e})", file=sys.stderr)
            return 2
        if r.get("devices", 1) != 1 or r.get("platform") != "cuda":
            print(f"{f}: one-GPU reports only (devices {r.get('devices')}, platform {r.get('platform')})",
                  file=sys.stderr)
            return 2
        bw = bandwidth_of(r, args.bandwidth)
        rows = [floor(r, u, bw) for u in us]
        engine = "pallas" if r["details"].get("pallas_kernels") else "xla"
        live = "-"
        if engine == "pallas":
            lv = [floor(r, u, bw, live=True) for u in us]
            live = f"{lv[0]['bytes'] / 1e6:.1f}: " + " / ".join(f"{x['raw_words_per_s'] / 1e6:.0f}" for x in lv)
        print(f"| {os.path.basename(os.path.dirname(f))} | {engine} | {r['settings']['batch_size']} | "
              f"{r['per_micro_step']['raw_words_per_micro_step']:,} | {rows[0]['kernels']} | "
              f"{rows[0]['bytes'] / 1e6:.1f} | {rows[0]['bytes'] / bw * 1e6:.1f} | "
              + " | ".join(f"{x['raw_words_per_s'] / 1e6:.0f}" for x in rows) + f" | {live} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
