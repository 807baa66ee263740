#!/usr/bin/env python3
"""Times commands the way hyperfine -N does (spawn, wait, wall clock; output
to /dev/null), but interleaved: each round runs every command once, in a
rotated order, so drift on the machine (other load, frequency, caches) hits
all commands alike and their ratios stay honest on a noisy VM.

Usage: interleave.py RUNS WARMUP OUT.json NAME=COMMAND...
Writes {"results": [{"command": NAME, "median": seconds, "times": [...]}]}.
"""
import json
import os
import shlex
import statistics
import sys
import time


def run_once(argv, env, devnull):
    t = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=[
        (os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)])
    _, status = os.waitpid(pid, 0)
    dt = time.perf_counter_ns() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: {shlex.join(argv)} failed")
    return dt / 1e9


def main():
    runs, warmup, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    cmds = []
    for spec in sys.argv[4:]:
        name, _, cmd = spec.partition("=")
        words = shlex.split(cmd)
        env = dict(os.environ)
        while words and "=" in words[0] and not words[0].startswith("/"):
            k, _, v = words.pop(0).partition("=")
            env[k] = v
        cmds.append((name, words, env))
    devnull = os.open(os.devnull, os.O_WRONLY)
    times = {name: [] for name, _, _ in cmds}
    for i in range(warmup + runs):
        k = i % len(cmds)
        for name, argv, env in cmds[k:] + cmds[:k]:
            t = run_once(argv, env, devnull)
            if i >= warmup:
                times[name].append(t)
    results = [{"command": n, "median": statistics.median(ts), "times": ts} for n, ts in times.items()]
    with open(out, "w") as f:
        json.dump({"results": results}, f)


if __name__ == "__main__":
    main()
