"""A lead for issue 46: the 1x1 (pointwise) convolutions' backward pass, as the network runs them (mkldnn,
channels-last), against the same product written as a matrix multiply (F.linear over the channels of an NHWC
view). Same inputs, same weights; outputs and gradients compared; times side by side in one run, 2 threads.

    python experiments/train_profile/pointwise.py
"""

import os
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}")
for n, cin, cout, side in [(128, 64, 128, 48), (128, 128, 256, 24), (128, 128, 128, 24), (128, 256, 256, 12)]:
    x0 = torch.randn(n, cin, side, side).contiguous(memory_format=torch.channels_last)
    w0 = torch.randn(cout, cin, 1, 1) * 0.1

    def conv(x, w):
        return F.conv2d(x, w)

    def linear(x, w):  # NHWC memory: the channels are the last axis, so this is one matrix product
        return F.linear(x.permute(0, 2, 3, 1), w.flatten(1)).permute(0, 3, 1, 2)

    results = {}
    for name, fn in (("conv2d 1x1", conv), ("linear", linear)):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        for _ in range(2):
            fn(x, w).sum().backward()
        times = []
        for _ in range(5):
            x.grad = w.grad = None
            y = fn(x, w)
            t0 = time.perf_counter()
            y.backward(torch.ones_like(y))
            times.append(time.perf_counter() - t0)
        results[name] = (min(times), y.detach(), x.grad.clone(), w.grad.clone())
    (tc, yc, gxc, gwc), (tl, yl, gxl, gwl) = results["conv2d 1x1"], results["linear"]
    same = all(torch.allclose(a, b, rtol=1e-4, atol=1e-3) for a, b in ((yc, yl), (gxc, gxl), (gwc, gwl)))
    print(f"{n}x{cin}x{side}x{side} -> {cout}: backward conv2d {1000 * tc:6.1f} ms, linear {1000 * tl:6.1f} ms, "
          f"ratio {tc / tl:4.2f}x; outputs and gradients equal: {same}")
