"""GPU throughput of the ingest models, run on a CUDA machine: ``python -m vitrine_tools.bench.gpu --json OUT``.

Measures, in one process on one GPU, images/s of:
  - model alone: the folded EfficientNet-Lite0 on ready tensors, fp32 and bf16, eager and compiled;
  - nvJPEG path: JPEG bytes -> nvJPEG decode -> letterbox -> model (bf16), as the GPU ingest does;
  - CPU-decode path: PIL decode in a thread pool -> pinned host memory -> non-blocking copy -> model;
  - pipelined nvJPEG: decode of batch N+1 on a side CUDA stream while batch N runs.
Medians over timed repetitions after warm-up, with ``torch.cuda.synchronize()`` around each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _timed(fn: Callable[[], Any], reps: int = 5) -> float:
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    from workers.vision.decode import decode_image
    from workers.vision.efficientnet import load_efficientnet_lite0
    from workers.vision.embedders import letterbox
    from workers.vision.fused import fuse
    from workers.vision.gpu import decode_jpegs

    ap = argparse.ArgumentParser()
    ap.add_argument("--images", default="vitrine_tools/devstack/sample/images")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--json", default="gpu.json")
    args = ap.parse_args()
    dev = torch.device("cuda")
    paths = sorted(Path(args.images).glob("*.jpg"))
    blobs = [p.read_bytes() for p in paths]
    blobs = (blobs * (args.batch // len(blobs) + 1))[: args.batch]
    b = args.batch
    report: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "batch": b,
                              "jpeg_bytes_mean": int(np.mean([len(x) for x in blobs]))}
    model = fuse(load_efficientnet_lite0(dev, weights=args.weights)).to(memory_format=torch.channels_last)
    x = torch.randn(b, 3, 224, 224, device=dev).contiguous(memory_format=torch.channels_last)

    def run(m: Any, dtype: torch.dtype | None, inp: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if dtype is None:
                return m(inp).mean(dim=(2, 3))
            with torch.autocast("cuda", dtype=dtype):
                return m(inp).mean(dim=(2, 3))

    r: dict[str, float] = {}
    r["model_fp32"] = b / _timed(lambda: run(model, None, x))
    r["model_bf16"] = b / _timed(lambda: run(model, torch.bfloat16, x))
    try:
        compiled = torch.compile(model)
        run(compiled, torch.bfloat16, x)
        r["model_bf16_compiled"] = b / _timed(lambda: run(compiled, torch.bfloat16, x))
        best = compiled if r["model_bf16_compiled"] > r["model_bf16"] else model
    except Exception as exc:  # report, do not fail the whole measurement
        report["compile_error"] = repr(exc)[:300]
        best = model
    r["nvjpeg_decode_only"] = b / _timed(lambda: decode_jpegs(blobs, dev))
    r["nvjpeg_plus_model"] = b / _timed(
        lambda: run(best, torch.bfloat16, decode_jpegs(blobs, dev).contiguous(memory_format=torch.channels_last)))

    pool = ThreadPoolExecutor(16)

    def cpu_path() -> torch.Tensor:
        arrs = list(pool.map(lambda d: letterbox(decode_image(d, target=224)), blobs))
        host = torch.from_numpy(np.stack(arrs)).pin_memory()  # (B, 224, 224, 3) uint8
        dev_x = host.to(dev, non_blocking=True).permute(0, 3, 1, 2).float().sub_(127.0).div_(128.0)
        return run(best, torch.bfloat16, dev_x.contiguous(memory_format=torch.channels_last))

    r["cpu_decode_plus_model"] = b / _timed(cpu_path, reps=3)

    side = torch.cuda.Stream()

    def pipelined(n_batches: int = 8) -> None:
        nxt = None
        with torch.cuda.stream(side):
            nxt = decode_jpegs(blobs, dev)
        for _ in range(n_batches):
            torch.cuda.current_stream().wait_stream(side)
            cur = nxt
            with torch.cuda.stream(side):
                nxt = decode_jpegs(blobs, dev)
            run(best, torch.bfloat16, cur.contiguous(memory_format=torch.channels_last))

    r["nvjpeg_pipelined"] = 8 * b / _timed(pipelined, reps=3)
    report["images_per_s"] = {k: round(v, 1) for k, v in r.items()}
    report["pipeline_over_model_alone"] = round(r["nvjpeg_pipelined"] / r["model_bf16"], 3)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
