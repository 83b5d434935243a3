"""How many cores does this machine really give? N processes x the same numpy work; aggregate rate."""

import multiprocessing as mp
import time

import numpy as np


def work(_: int) -> float:
    rng = np.random.default_rng(1)
    a = rng.random(2_000_000)
    t = time.perf_counter()
    for _ in range(40):
        np.sort(a)
    return time.perf_counter() - t


if __name__ == "__main__":
    base = None
    for n in (1, 2, 4, 8, 16):
        with mp.get_context("spawn").Pool(n) as pool:
            t0 = time.perf_counter()
            pool.map(work, range(n))
            dt = time.perf_counter() - t0
        rate = n / dt
        base = base or rate
        print(f"cpu probe: {n:2d} processes  {rate:6.2f} tasks/s  = {rate / base:5.2f} x 1 process", flush=True)
