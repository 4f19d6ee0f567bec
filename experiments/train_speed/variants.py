"""Issue 46: what else was tried to make a training step faster on 2 CPU cores, and not taken.

The network's training step alone (batch 128 unless said, 48x48, focal loss, AdamW; the full recipe's
augmentation and MixUp cost under 1% of a step: ../train_profile/), every setting in a process of its own
(the allocator setting of emo.fastpath is process-wide), settings taking turns twice, the median kept.

    python experiments/train_speed/variants.py > experiments/train_speed/variants.txt
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

VARIANTS = {
    "shipped": "as shipped (torch dropout, glibc's default allocator)",
    "fast": "the fast path (emo.fastpath)",
    "fast_nchw": "fast path, channels-first instead of channels-last",
    "fast_bf16_onednn": "fast path, oneDNN float32 convolutions and matmuls in implicit bfloat16 (AMX)",
    "fast_autocast": "fast path, bfloat16 autocast",
    "fast_b64": "fast path, batch 64",
    "fast_b256": "fast path, batch 256",
    "fast_shortcut_slice": "fast path, stride-2 1x1 shortcut as a slice then a 1x1 conv (equal outputs)",
    "fast_compile": "fast path, torch.compile of the model (inductor)",
    "fast_no_dropout": "fast path without any dropout (a bound, not a recipe)",
}


def one(name: str, steps: int = 12, warmup: int = 3) -> float:
    import torch
    import torch.nn.functional as F

    from emo.fastpath import use_fast_path
    from emo.losses import focal_loss
    from emo.network import build_model

    torch.set_num_threads(2)
    batch = {"fast_b64": 64, "fast_b256": 256}.get(name, 128)
    torch.manual_seed(0)
    model = build_model(input_size=48)
    if name != "shipped":
        use_fast_path(model)
    if name == "fast_no_dropout":
        for m in model.modules():
            if hasattr(m, "keep"):
                m.keep = 65536
    if name == "fast_shortcut_slice":
        conv = model.blocks[0].shortcut[0]
        conv.forward = lambda x: F.conv2d(x[:, :, ::2, ::2], conv.weight)  # type: ignore[method-assign]
    if name == "fast_bf16_onednn":
        torch.backends.mkldnn.conv.fp32_precision = "bf16"
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    cl = name != "fast_nchw"
    if cl:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if name == "fast_compile" else model
    opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, 48, 48, generator=g)
    x = x.contiguous(memory_format=torch.channels_last) if cl else x
    t = F.one_hot(torch.randint(0, 7, (batch,), generator=g), 7).float()
    model.train()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "fast_autocast"):
            out = net(x)
        loss = focal_loss(out.float(), t, 2.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(one(sys.argv[2])))
        return
    import torch
    load = os.getloadavg()[0]
    rates: dict[str, list[float]] = {n: [] for n in VARIANTS}
    for _ in range(2):
        for name in VARIANTS:
            out = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, check=True)
            rates[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = statistics.median(rates["shipped"])
    print(f"# {time.strftime('%Y-%m-%d')}, torch {torch.__version__}, 2 threads, load {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; faces/s of the network's training step, median of 2\n")
    print("| setting | faces/s | vs as shipped |\n|---|---:|---:|")
    for name, label in VARIANTS.items():
        r = statistics.median(rates[name])
        print(f"| {label} | {r:,.0f} | {r / base:.2f}x |")


if __name__ == "__main__":
    main()
