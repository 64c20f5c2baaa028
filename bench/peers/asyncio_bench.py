#!/usr/bin/env python3
"""asyncio peer of taskscope-bench.

Prints one line per figure, exactly `NAME: VALUE UNIT`; lines starting with '#' are notes.
  spawn_join_ns  create_task(trivial coroutine) + await it, ns per iteration (best of runs)
  switch_ns      two tasks handing control to each other through futures, ns per handoff
  pending_bytes  RSS growth per task for N tasks all awaiting one never-set Event
  pending_tasks  that N

Flags: --debug (loop in asyncio debug mode, smaller N), --quick (smaller N),
       --only NAME (one figure).
"""
import argparse
import asyncio
import gc
import os
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def emit(name, value, unit):
    if isinstance(value, float):
        print(f"{name}: {value:.1f} {unit}", flush=True)
    else:
        print(f"{name}: {value} {unit}", flush=True)


async def trivial():
    return None


async def spawn_join(n, runs):
    loop = asyncio.get_running_loop()
    best = None
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await loop.create_task(trivial())
        dt = (time.perf_counter_ns() - t0) / n
        best = dt if best is None else min(best, dt)
    return best


class Baton:
    """A one-way handoff: wait() suspends until the other side calls wake().

    The future is replaced right after each wake-up, before the waiter hands control back, so a
    wake() always lands on the future the waiter will wait for next."""

    def __init__(self, loop):
        self.loop = loop
        self.fut = loop.create_future()

    async def wait(self):
        await self.fut
        self.fut = self.loop.create_future()

    def wake(self):
        self.fut.set_result(None)


async def switch(n, runs):
    """n round trips = 2n switches: A wakes B and waits; B wakes A and waits."""
    loop = asyncio.get_running_loop()
    best = None
    for _ in range(runs):
        a, b = Baton(loop), Baton(loop)

        async def side_b():
            for _ in range(n):
                await b.wait()
                a.wake()

        tb = loop.create_task(side_b())
        await asyncio.sleep(0)  # let B reach its first wait
        t0 = time.perf_counter_ns()
        for _ in range(n):
            b.wake()
            await a.wait()
        dt = (time.perf_counter_ns() - t0) / (2 * n)
        await tb
        best = dt if best is None else min(best, dt)
    return best


async def switch_sleep0(n):
    """For reference: two tasks alternating through asyncio.sleep(0) (no handoff protocol)."""
    loop = asyncio.get_running_loop()

    async def spin():
        for _ in range(n):
            await asyncio.sleep(0)

    t0 = time.perf_counter_ns()
    t1 = loop.create_task(spin())
    t2 = loop.create_task(spin())
    await t1
    await t2
    return (time.perf_counter_ns() - t0) / (2 * n)


async def pending(n):
    ev = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = 0

    async def waiter():
        nonlocal started
        started += 1
        await ev.wait()

    tasks = [None] * n  # the handle list is allocated before the first measurement
    gc.collect()
    before = rss_bytes()
    for i in range(n):
        tasks[i] = loop.create_task(waiter())
    while started < n:
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    gc.collect()
    after = rss_bytes()
    ev.set()
    await asyncio.gather(*tasks)
    return (after - before) / n


async def main(args):
    loop = asyncio.get_running_loop()
    if args.debug:
        # Debug mode logs every step slower than 0.1 s; creating many tasks in one step is
        # expected here, so keep stderr quiet.
        loop.slow_callback_duration = 1e9
    dbg = args.debug
    quick = args.quick
    if dbg:
        n_spawn, n_switch, n_pending, runs = (500, 500, 2000, 3) if quick else (2000, 2000, 5000, 3)
    else:
        n_spawn, n_switch, n_pending, runs = (5000, 10000, 20000, 3) if quick else (30000, 50000, 100000, 3)

    print(f"# python {sys.version.split()[0]} asyncio debug={dbg}", flush=True)
    want = lambda name: args.only in (None, name)
    if want("spawn_join_ns"):
        emit("spawn_join_ns", await spawn_join(n_spawn, runs), "ns")
    if want("switch_ns"):
        emit("switch_ns", await switch(n_switch, runs), "ns")
        if not dbg and args.only is None:
            emit("switch_sleep0_ns", await switch_sleep0(n_switch), "ns")
    if want("pending_bytes"):
        emit("pending_bytes", await pending(n_pending), "bytes")
        emit("pending_tasks", n_pending, "count")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="run the loop with debug=True")
    p.add_argument("--quick", action="store_true", help="fewer iterations")
    p.add_argument("--only", metavar="NAME", help="run one figure")
    a = p.parse_args()
    asyncio.run(main(a), debug=a.debug)
