"""MKL's matrix product on this machine, through PyTorch (the peers' environment):
2048^3 and the mlp workload's first product, on 1 and 2 threads. The reference for how close
netc's products come to the best this CPU does (docs/results.md).
usage: /tmp/netc-peers/bin/python benches/mkl_peak.py"""
import time

import torch


def rate(a, b, repeats):
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, (time.perf_counter() - t) / repeats)
    m, k = a.shape
    n = b.shape[1]
    return 2 * m * n * k / best / 1e9


for threads in (1, 2):
    torch.set_num_threads(threads)
    big = rate(torch.rand(2048, 2048), torch.rand(2048, 2048), 5)
    mlp = rate(torch.rand(128, 784), torch.rand(784, 256), 500)
    print(f"{threads} thread(s): 2048^3 {big:.0f} GFLOP/s, 128x784x256 {mlp:.0f} GFLOP/s")
