#!/usr/bin/env python3
"""The timing loop of tools/bench-iso and tools/bench-usb.

Usage: bench-interleave.py SPEC.json ROUNDS OUT.json
SPEC: a list of {"name", "cmd", optional "prepare"} (shell text). OUT: per name, the wall and
CPU times of every counted run and the peak RSS.
"""
# Interleaved rounds: each round runs every command once (after its prepare step and a sync, so
# that no writeback left by the previous command runs during it) in an order
# rotated per round, so load that drifts during the run hits all commands alike. Wall time and
# CPU time (user + system, from wait4) per run; round 0 warms up and is not counted. Peak RSS
# from one more run under GNU time (wait4's would include this Python's pages, inherited by fork).
# BENCH_HOGS=N runs N busy loops (one core each, normal priority) during the timed rounds: a
# busy host, where CPU-bound work stretches more than a memory copy does.
import json, os, subprocess, sys, time
spec, rounds, out = json.load(open(sys.argv[1])), int(sys.argv[2]), sys.argv[3]
res = {c["name"]: {"wall": [], "cpu": [], "rss": []} for c in spec}
hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(int(os.environ.get("BENCH_HOGS", "0")))]
for r in range(rounds + 1):
    k = r % len(spec)
    for c in spec[k:] + spec[:k]:
        subprocess.run(["sh", "-c", c.get("prepare", "true")], check=True)
        os.sync()  # nothing left dirty by earlier commands gets written back during this one
        start = time.perf_counter()
        p = subprocess.Popen(["sh", "-c", c["cmd"]], stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        if status != 0: sys.exit(f"{c['name']} failed (wait status {status})")
        if r > 0:
            res[c["name"]]["wall"].append(wall)
            res[c["name"]]["cpu"].append(usage.ru_utime + usage.ru_stime)
for hog in hogs:
    hog.kill()
    hog.wait()
for c in spec:
    subprocess.run(["sh", "-c", c.get("prepare", "true")], check=True)
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out + ".rss", "sh", "-c", c["cmd"]], stdout=subprocess.DEVNULL, check=True)
    res[c["name"]]["rss"].append(int(open(out + ".rss").read().split()[-1]))
json.dump(res, open(out, "w"))
