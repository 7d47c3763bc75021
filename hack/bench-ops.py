#!/usr/bin/env python3
"""Times every runtime operation of a container's life, interleaved: each round runs each
operation once per runtime, the runtimes in a shuffled order (seeded, so runs are
repeatable), so that a load change on a shared machine hits all of them alike. Prints per
operation and runtime the median wall-clock time, the median CPU time and both as ratios
to the runtime named in --base.

The operations, in the order a round runs them (each runtime's containers are its own):
  create      `create --pid-file` of a busybox `sleep` bundle
  start       `start` of that container
  exec        `exec ID /bin/true` into it
  kill        `kill ID KILL`, until the container's init has exited (a pidfd opened
              before the kill turns readable)
  delete      `delete` of the stopped container
  run-d       `run -d` of the sleep bundle
  delete-f    `delete -f` of that running container
  run-d+del   `run -d` of the /bin/true bundle, then `delete` once it has exited (the work
              of a foreground run, without the waiting; two commands, one figure)
  run-null    `run` of /bin/true in the foreground, stdin and stdout /dev/null, stderr a
              file (as a supervisor that throws the output away starts it)
  run-pipe    the same with stdin, stdout and stderr on pipes read to their end (as a
              shell pipeline or a program capturing the output starts it)
  run-tty     the same with stdio on a pseudo-terminal that is the runtime's controlling
              terminal, in a session of its own (as typed in a terminal; process.terminal
              stays false)

Wall time is from just before the spawn to the runtime's exit (and, for pipes, the end of
its output; for kill, the init's exit). CPU time is user + system of the runtime's process
and every process it waited for (wait4's rusage): a container init that outlives the
command (create, start, run -d) is not counted there, a foreground run's init is.

With --counts N, every operation is also run N more rounds per runtime under `perf stat`
(software counters, which this VM has where it has no hardware ones; they count the
command's processes and every process they start, the container init included, from the
spawn to the command's exit) and the medians of the system calls
(raw_syscalls:sys_enter), page faults and task-clock (CPU) printed: counts that do not
depend on the machine's load.

usage: bench-ops.py ROUNDS --base NAME --root DIR --sleeper BUNDLE --true BUNDLE
                    [--ops OP,...] [--counts N] [--seed N] [--gap MS] NAME=BINARY...

With --gap MS every command is started MS milliseconds after the one before ended, as a
supervisor's commands come spaced apart: back to back, a command finds the grace period
of the cgroup lock (see docs/performance.md) that the previous command's cgroup attach
started already passed, whichever runtime that was.
"""
import argparse
import os
import random
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PERF_EVENTS = "raw_syscalls:sys_enter,page-faults,context-switches,task-clock"
OPS = ["create", "start", "exec", "kill", "delete", "run-d", "delete-f", "run-d+del",
       "run-null", "run-pipe", "run-tty"]


class Runner:
    """Spawns one runtime command with the stdio an operation wants, waits for it, and
    returns (wall seconds, CPU seconds)."""

    def __init__(self, errlog, perf_dir=None):
        self.errlog = errlog
        self.perf_dir = perf_dir
        self.perf_files = {}
        self.serial = 0

    def argv(self, argv, tag):
        if self.perf_dir is None:
            return argv
        self.serial += 1
        out = os.path.join(self.perf_dir, f"{tag}.{self.serial}")
        self.perf_files.setdefault(tag, []).append(out)
        return [shutil.which("perf"), "stat", "-x", ",", "-o", out, "-e", PERF_EVENTS, "--"] + argv

    def null(self, argv, tag):
        """stdin and stdout /dev/null, stderr the error log."""
        fa = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
              (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
              (os.POSIX_SPAWN_DUP2, self.errlog.fileno(), 2)]
        start = time.perf_counter()
        argv = self.argv(argv, tag)
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=fa)
        return self._wait(pid, start, argv)

    def pipes(self, argv, tag):
        """stdin, stdout and stderr on pipes; stdin is closed at once (EOF), stdout and
        stderr read to their end."""
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        fa = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
              (os.POSIX_SPAWN_DUP2, err_w, 2)]
        start = time.perf_counter()
        argv = self.argv(argv, tag)
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=fa)
        for fd in (in_r, in_w, out_w, err_w):
            os.close(fd)
        err = b""
        open_fds = {out_r, err_r}
        while open_fds:
            for fd in select.select(list(open_fds), [], [])[0]:
                data = os.read(fd, 65536)
                if not data:
                    open_fds.discard(fd)
                    os.close(fd)
                elif fd == err_r:
                    err += data
        if err:
            self.errlog.write(err.decode(errors="replace"))
        return self._wait(pid, start, argv)

    def tty(self, argv, tag):
        """stdio on a new pseudo-terminal's slave, made the controlling terminal of the
        runtime's own session (posix_spawn's setsid, then an open without O_NOCTTY)."""
        master, slave = os.openpty()
        slave_path = os.ttyname(slave)
        os.close(slave)
        fa = [(os.POSIX_SPAWN_OPEN, 0, slave_path, os.O_RDWR, 0),
              (os.POSIX_SPAWN_DUP2, 0, 1), (os.POSIX_SPAWN_DUP2, 0, 2)]
        start = time.perf_counter()
        argv = self.argv(argv, tag)
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=fa,
                             setsid=True)
        result = self._wait(pid, start, argv)
        os.close(master)
        return result

    def _wait(self, pid, start, argv):
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            self.errlog.flush()
            sys.exit(f"bench-ops: {' '.join(argv)} failed ({status:#x}); see {self.errlog.name}")
        return wall, usage.ru_utime + usage.ru_stime


def wait_exit(pidfd, what):
    if not select.select([pidfd], [], [], 30)[0]:
        sys.exit(f"bench-ops: {what} did not exit within 30 s")
    os.close(pidfd)


def read_pid(path):
    with open(path) as f:
        return int(f.read().strip())


def one_op(runner, op, name, binary, root, args, i):
    """Runs operation `op` of round i for one runtime; returns (wall, cpu)."""
    rt = binary.split() + ["--root", os.path.join(root, name)]
    cid = f"op-{i}"
    tag = f"{name}.{op}"
    pidfile = os.path.join(root, f"{name}.pid")
    if op == "create":
        return runner.null(rt + ["create", "-b", args.sleeper, "--pid-file", pidfile, cid], tag)
    if op == "start":
        return runner.null(rt + ["start", cid], tag)
    if op == "exec":
        return runner.null(rt + ["exec", cid, "/bin/true"], tag)
    if op == "kill":
        pidfd = os.pidfd_open(read_pid(pidfile))
        start = time.perf_counter()
        _, cpu = runner.null(rt + ["kill", cid, "KILL"], tag)
        wait_exit(pidfd, f"{name}'s container {cid} after kill")
        return time.perf_counter() - start, cpu
    if op == "delete":
        return runner.null(rt + ["delete", cid], tag)
    if op == "run-d":
        return runner.null(rt + ["run", "-d", "-b", args.sleeper, f"d-{i}"], tag)
    if op == "delete-f":
        return runner.null(rt + ["delete", "-f", f"d-{i}"], tag)
    if op == "run-d+del":
        start = time.perf_counter()
        _, cpu1 = runner.null(rt + ["run", "-d", "-b", args.true, "--pid-file", pidfile,
                                    f"t-{i}"], tag)
        try:
            pidfd = os.pidfd_open(read_pid(pidfile))
            wait_exit(pidfd, f"{name}'s container t-{i}")
        except ProcessLookupError:
            pass  # already gone
        _, cpu2 = runner.null(rt + ["delete", f"t-{i}"], tag)
        return time.perf_counter() - start, cpu1 + cpu2
    if op == "run-null":
        return runner.null(rt + ["run", "-b", args.true, f"n-{i}"], tag)
    if op == "run-pipe":
        return runner.pipes(rt + ["run", "-b", args.true, f"p-{i}"], tag)
    if op == "run-tty":
        return runner.tty(rt + ["run", "-b", args.true, f"y-{i}"], tag)
    raise ValueError(op)


def perf_counts(path):
    """{event: value} of a `perf stat -x,` output file."""
    counts = {}
    with open(path) as f:
        for line in f:
            fields = line.strip().split(",")
            if len(fields) > 2 and fields[2] in PERF_EVENTS.split(","):
                counts[fields[2]] = float(fields[0])
    return counts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("rounds", type=int)
    p.add_argument("--base", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--sleeper", required=True)
    p.add_argument("--true", required=True)
    p.add_argument("--ops", default=",".join(OPS))
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--counts", type=int, default=0)
    p.add_argument("--gap", type=float, default=0,
                   help="ms to sleep before each timed command")
    p.add_argument("runtimes", nargs="+", metavar="NAME=BINARY")
    args = p.parse_args()
    runtimes = [r.split("=", 1) for r in args.runtimes]
    ops = args.ops.split(",")
    for op in ops:
        if op not in OPS:
            sys.exit(f"bench-ops: unknown operation {op} (known: {', '.join(OPS)})")
    # Operations that need an earlier one's container bring it along.
    needs = {"start": ["create"], "exec": ["create", "start"], "kill": ["create", "start"],
             "delete": ["create", "start", "kill"], "delete-f": ["run-d"]}
    run_ops = [o for o in OPS if o in ops or any(o in needs.get(x, []) for x in ops)]
    for name, _ in runtimes:
        os.makedirs(os.path.join(args.root, name), exist_ok=True)
    errlog = open(os.path.join(args.root, "stderr.log"), "a")
    rng = random.Random(args.seed)
    wall = {(o, n): [] for o in run_ops for n, _ in runtimes}
    cpu = {(o, n): [] for o in run_ops for n, _ in runtimes}
    runner = Runner(errlog)
    total = args.warmup + args.rounds
    for i in range(total):
        for op in run_ops:
            order = list(runtimes)
            rng.shuffle(order)
            for name, binary in order:
                if args.gap:
                    time.sleep(args.gap / 1000)
                w, c = one_op(runner, op, name, binary, args.root, args, i)
                if i >= args.warmup:
                    wall[(op, name)].append(w * 1000)
                    cpu[(op, name)].append(c * 1000)
        # A container left by an operation that was not asked for (create without
        # delete): removed untimed.
        for name, binary in runtimes:
            for cid in (f"op-{i}", f"d-{i}"):
                if os.path.isdir(os.path.join(args.root, name, cid)):
                    subprocess.run(binary.split() + ["--root", os.path.join(args.root, name),
                                    "delete", "-f", cid], stdout=subprocess.DEVNULL,
                                   stderr=errlog, check=False)

    names = [n for n, _ in runtimes]
    print(f"{'operation':<10}" + "".join(f" {n + ' ms':>9} {n + ' CPU':>9}" for n in names)
          + "".join(f" {n + '/' + args.base:>11} {'CPU':>5}" for n in names if n != args.base))
    sums = {n: [0.0, 0.0] for n in names}
    for op in ops:
        med = {n: (statistics.median(wall[(op, n)]), statistics.median(cpu[(op, n)]))
               for n in names}
        for n in names:
            sums[n][0] += med[n][0]
            sums[n][1] += med[n][1]
        bw, bc = med[args.base]
        print(f"{op:<10}" + "".join(f" {med[n][0]:9.2f} {med[n][1]:9.2f}" for n in names)
              + "".join(f" {med[n][0] / bw:10.2f}x {med[n][1] / bc:4.2f}x" for n in names
                        if n != args.base))
    bw, bc = sums[args.base]
    print(f"{'sum':<10}" + "".join(f" {sums[n][0]:9.2f} {sums[n][1]:9.2f}" for n in names)
          + "".join(f" {sums[n][0] / bw:10.2f}x {sums[n][1] / bc:4.2f}x" for n in names
                    if n != args.base))

    if args.counts:
        with tempfile.TemporaryDirectory() as d:
            runner = Runner(errlog, perf_dir=d)
            for i in range(total, total + args.counts):
                for op in run_ops:
                    for name, binary in runtimes:
                        one_op(runner, op, name, binary, args.root, args, i)
            print(f"\nper operation, medians of {args.counts} runs under perf stat: system calls, "
                  "page faults, context switches, CPU ms (task-clock); the container init "
                  "included")
            print(f"{'operation':<10}" + "".join(
                f" {n + ' sys':>9} {n + ' pf':>8} {n + ' cs':>7} {n + ' CPU':>9}" for n in names))
            for op in ops:
                row = f"{op:<10}"
                for n in names:
                    # run-d+del is two commands: their counts add up.
                    samples = []
                    files = runner.perf_files[f"{n}.{op}"]
                    step = 2 if op == "run-d+del" else 1
                    for k in range(0, len(files), step):
                        c = {}
                        for f in files[k:k + step]:
                            for e, v in perf_counts(f).items():
                                c[e] = c.get(e, 0) + v
                        samples.append(c)
                    med = lambda e: statistics.median(s.get(e, 0) for s in samples)
                    row += (f" {med('raw_syscalls:sys_enter'):9.0f} {med('page-faults'):8.0f}"
                            f" {med('context-switches'):7.0f} {med('task-clock'):9.2f}")
                print(row)


if __name__ == "__main__":
    main()
