"""Issue 46: a 1x1 convolution's forward and backward as bfloat16 matrix products (AMX) instead of oneDNN's
float32 convolution, on the shapes of the shipped network's pointwise convolutions, batch 128, 2 threads.
Not taken: the casts and the transposed product of the weight gradient eat most of what AMX gives.

    python experiments/train_speed/pointwise_bf16.py > experiments/train_speed/pointwise_bf16.txt
"""
import os
import time, torch, torch.nn as nn
torch.set_num_threads(2)
class PW(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):  # x channels-last N C H W (fp32), w Cout Cin 1 1 (fp32)
        n, c, h, wd = x.shape
        x2 = x.permute(0, 2, 3, 1).reshape(-1, c).to(torch.bfloat16)
        w2 = w.reshape(w.shape[0], c).to(torch.bfloat16)
        ctx.save_for_backward(x2, w2); ctx.shape = (n, h, wd)
        y = (x2 @ w2.t()).float()
        return y.view(n, h, wd, -1).permute(0, 3, 1, 2)
    @staticmethod
    def backward(ctx, g):
        x2, w2 = ctx.saved_tensors
        n, h, wd = ctx.shape
        g2 = g.permute(0, 2, 3, 1).reshape(-1, g.shape[1]).to(torch.bfloat16)
        gx = (g2 @ w2).float().view(n, h, wd, -1).permute(0, 3, 1, 2)
        gw = (g2.t() @ x2).float()
        return gx, gw.view(*gw.shape, 1, 1)
def tm(f, n=8):
    f(); f(); ts=[]
    for _ in range(n):
        t0=time.perf_counter(); f(); ts.append(time.perf_counter()-t0)
    return sorted(ts)[n//2]*1000
for cin, cout, s in [(64,128,24),(128,128,24),(128,256,12),(256,256,12)]:
    c = nn.Conv2d(cin,cout,1,bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(128,cin,s,s).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    y = c(x); g = torch.randn_like(y)
    a = tm(lambda: c(x).backward(g))
    b = tm(lambda: PW.apply(x, c.weight).backward(g))
    y2 = PW.apply(x, c.weight)
    print(f"{cin}>{cout}@{s}: load {os.getloadavg()[0]:.2f}, conv fp32 {a:6.1f} ms, bf16 matmul {b:6.1f} ms, rel err {((y2-y).norm()/y.norm()).item():.1e}, CL {y2.is_contiguous(memory_format=torch.channels_last)}")
