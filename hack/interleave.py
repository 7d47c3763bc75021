#!/usr/bin/env python3
"""Times commands interleaved (every round runs each command once) so that a load change
on a shared machine hits all of them alike, and prints per command the median wall-clock
time, the median CPU time (user+sys of the whole process tree, from the children's
rusage) and both as ratios to the first command named in --base.

The order within a round is shuffled (fixed seed, so runs are repeatable): a command pays
part of the asynchronous kernel work its predecessor left behind (network namespace
teardown, RCU callbacks, cgroup release), and runc leaves much more than the others, so a
fixed order (A, B, C, A, B, C) biased whichever runtime ran right after it, by about 5%
of its wall time on this VM; rotating the order still let one runtime follow runc twice
as often as another.

usage: interleave.py RUNS --base NAME NAME=COMMAND...   (COMMAND split on spaces)
"""
import random
import resource
import statistics
import subprocess
import sys
import time


def main():
    runs = int(sys.argv[1])
    assert sys.argv[2] == "--base"
    base = sys.argv[3]
    cmds = [a.split("=", 1) for a in sys.argv[4:]]
    wall = {n: [] for n, _ in cmds}
    cpu = {n: [] for n, _ in cmds}
    warmup = 3
    rng = random.Random(1)
    for i in range(warmup + runs):
        order = list(cmds)
        rng.shuffle(order)
        for name, cmd in order:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(cmd.split(), check=True, stdout=subprocess.DEVNULL)
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if i >= warmup:
                wall[name].append(elapsed * 1000)
                used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                cpu[name].append(used * 1000)
    bw, bc = statistics.median(wall[base]), statistics.median(cpu[base])
    print(f"{'runtime':<6} {'median(ms)':>12} {'vs ' + base:>10} {'CPU(ms)':>12} {'vs ' + base:>10}")
    for name, _ in cmds:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"{name:<6} {w:12.2f} {w / bw:9.2f}x {c:12.2f} {c / bc:9.2f}x")


if __name__ == "__main__":
    main()
