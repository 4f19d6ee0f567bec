"""Issue 46: the two costs that emo.fastpath removes, alone. An out-of-place product of two activations of
the shipped network's sizes (block 1: 128 x 128 x 24 x 24 floats, 38 MB; the stem: 128 x 64 x 48 x 48, 75 MB)
with glibc's default allocator and with emo.fastpath.keep_freed_memory (each in a process of its own: the
setting is process-wide), and torch's dropout against emo.fastpath.BitsDropout on block 1's output, 2 threads.

    python experiments/train_speed/allocator.py > experiments/train_speed/allocator.txt
"""

import json
import statistics
import os
import subprocess
import sys
import time

import torch

from emo.bench import timed


def median_ms(fn, n: int = 15) -> float:
    return 1000 * statistics.median(timed(fn, n, warmup=2))


def one(keep: bool) -> dict:
    from emo.fastpath import BitsDropout, keep_freed_memory
    if keep:
        keep_freed_memory()
    torch.set_num_threads(2)
    a = torch.randn(128, 128, 24, 24).contiguous(memory_format=torch.channels_last)
    b = torch.randn(128, 64, 48, 48).contiguous(memory_format=torch.channels_last)
    x = a.clone().requires_grad_(True)
    g = torch.randn_like(a)
    torch_drop, bits_drop = torch.nn.Dropout(0.1).train(), BitsDropout(0.1).train()
    return {"mul 38 MB": median_ms(lambda: a * a), "mul 75 MB": median_ms(lambda: b * b),
            "in place 38 MB": median_ms(lambda: a.mul_(1.0)),
            "torch dropout, forward and backward": median_ms(lambda: torch_drop(x).backward(g)),
            "BitsDropout, forward and backward": median_ms(lambda: bits_drop(x).backward(g))}


if __name__ == "__main__":
    if len(sys.argv) == 2:
        print(json.dumps(one(sys.argv[1] == "keep")))
        sys.exit()
    load = os.getloadavg()[0]
    runs = {k: json.loads(subprocess.run([sys.executable, __file__, k], capture_output=True, text=True,
                                         check=True).stdout) for k in ("default", "keep")}
    print(f"# {time.strftime('%Y-%m-%d')}, torch {torch.__version__}, 2 threads, load {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; median ms\n")
    print("| operation | glibc's default | freed memory kept |\n|---|---:|---:|")
    for op in runs["default"]:
        print(f"| {op} | {runs['default'][op]:.1f} | {runs['keep'][op]:.1f} |")
