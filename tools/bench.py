#!/usr/bin/env python3
"""The timing loop and the table of every benchmark in tools/ (bench-iso, bench-usb,
bench-iso-cramfs, bench-cramfs-writer, bench-scale).

Usage: bench.py run ROUNDS OUT.json CLAUSE...
       bench.py table OUT.json [--title TEXT] [--only PREFIX] [--times NAME]... [--speedup LABEL NAME]...
       bench.py targets OUT.json [--title TEXT] [--ratio LABEL NAME BASE MAX]... [--rss MIB]

`run` takes the commands as argv words, never as shell text: each CLAUSE is a keyword, its
words and a lone `;` (the last clause may end without it):
    name LABEL ;        starts the next command of the table
    prepare ARGV... ;   a step run (untimed) before each of its runs, e.g. rm -f OUT
    run ARGV... ;       a timed step; a command's steps run one after the other (a `&&` chain)
Each argv is executed directly (no shell): a path with spaces or quotes stays one word.
Every step's stdout goes to /dev/null; its stderr is shown only when the step fails.

OUT: per name, the wall and CPU times of every counted run and the peak RSS.

`table` prints it as a markdown table: median, interquartile range, minimum, one `× NAME`
column per --times (this median over NAME's), one `LABEL ÷ this` column per --speedup
(NAME's median over this one), CPU time (user + system) and peak RSS. A command named
`GROUP: COMMAND` is compared with `GROUP: NAME` where there is one (else with NAME), so one
run can hold several groups, each with its own reference; --only PREFIX keeps the commands
whose names start with PREFIX and shows them without it.

`targets` prints one row per --ratio (NAME's median over BASE's, met when at most MAX) and
with --rss the largest peak RSS of all commands (met when at most MIB), then one line per
target: `target met: ...` or `target not met: ...`, with the numbers.
"""
# Interleaved rounds: each round runs every command once (after its prepare steps and a sync,
# so that no writeback left by the previous command runs during it) in an order rotated per
# round, so load that drifts during the run hits all commands alike. Wall time and CPU time
# (user + system, from wait4) per run; round 0 warms up and is not counted. Peak RSS from one
# more run under GNU time, the largest of the command's steps (wait4's would include this
# Python's pages, inherited by fork).
# BENCH_HOGS=N runs N busy loops (one core each, normal priority) during the timed rounds: a
# busy host, where CPU-bound work stretches more than a memory copy does.
import argparse, json, os, shlex, statistics, subprocess, sys, tempfile, time

ERR = tempfile.TemporaryFile()  # the stderr of the step running now


def failed(name, argv, status):
    ERR.seek(0)
    sys.stderr.write(ERR.read().decode("utf-8", "replace"))
    sys.exit(f"{name} failed: {shlex.join(argv)} (exit status {status})")


def step(name, argv, prefix=()):
    """Runs one step with stdout to /dev/null and stderr kept for a failure: its rusage."""
    ERR.seek(0)
    ERR.truncate()
    p = subprocess.Popen([*prefix, *argv], stdout=subprocess.DEVNULL, stderr=ERR)
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        failed(name, argv, os.waitstatus_to_exitcode(status))
    return usage


def parse_clauses(words):
    """The commands of CLAUSE... as [{"name", "prepare": [argv], "run": [argv]}]."""
    clauses, cur = [], []
    for w in words:
        if w == ";":
            clauses.append(cur)
            cur = []
        else:
            cur.append(w)
    if cur:
        clauses.append(cur)
    spec = []
    for c in clauses:
        if not c:
            sys.exit("bench.py: empty clause")
        kind, argv = c[0], c[1:]
        if kind == "name":
            if len(argv) != 1:
                sys.exit(f"bench.py: `name` takes one word, got {argv!r}")
            spec.append({"name": argv[0], "prepare": [], "run": []})
        elif kind in ("prepare", "run"):
            if not spec:
                sys.exit(f"bench.py: `{kind}` before the first `name`")
            if not argv:
                sys.exit(f"bench.py: `{kind}` without a command")
            spec[-1][kind].append(argv)
        else:
            sys.exit(f"bench.py: unknown clause {kind!r} (name, prepare or run)")
    for c in spec:
        if not c["run"]:
            sys.exit(f"bench.py: {c['name']!r} has no `run` step")
    return spec


def prepare(c):
    for argv in c["prepare"]:
        step(c["name"], argv)


def run(args):
    spec = parse_clauses(args.clauses)
    res = {c["name"]: {"wall": [], "cpu": [], "rss": []} for c in spec}
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(int(os.environ.get("BENCH_HOGS", "0")))]
    try:
        for r in range(args.rounds + 1):
            k = r % len(spec)
            for c in spec[k:] + spec[:k]:
                prepare(c)
                os.sync()  # nothing left dirty by earlier commands gets written back during this one
                cpu = 0.0
                start = time.perf_counter()
                for argv in c["run"]:
                    usage = step(c["name"], argv)
                    cpu += usage.ru_utime + usage.ru_stime
                wall = time.perf_counter() - start
                if r > 0:
                    res[c["name"]]["wall"].append(wall)
                    res[c["name"]]["cpu"].append(cpu)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    for c in spec:
        prepare(c)
        for argv in c["run"]:
            step(c["name"], argv, prefix=("/usr/bin/time", "-f", "%M", "-o", args.out + ".rss"))
            res[c["name"]]["rss"].append(int(open(args.out + ".rss").read().split()[-1]))
    json.dump(res, open(args.out, "w"))


def load(path):
    """OUT.json and the median wall time per command."""
    res = json.load(open(path))
    return res, {n: statistics.median(r["wall"]) for n, r in res.items()}


def reference(med, row, name, path):
    """The command `row` is compared with for `name`: `GROUP: name` in row's group, else name."""
    group, sep, _ = row.partition(": ")
    if sep and group + sep + name in med:
        return group + sep + name
    if name not in med:
        sys.exit(f"bench.py: no command named {name!r} in {path}")
    return name


def table(args):
    res, med = load(args.times_json)
    rows = [n for n in res if n.startswith(args.only)]
    if not rows:
        sys.exit(f"bench.py: no command named {args.only!r}... in {args.times_json}")
    ref = {(n, b): reference(med, n, b, args.times_json)
           for n in rows for b in args.times + [name for _, name in args.speedup]}

    def iqr(v):
        v = sorted(v)
        return v[len(v) // 4], v[(3 * len(v)) // 4]

    if args.title:
        print(args.title)
        print()
    heads = (["command", "median (s)", "IQR (s)", "min (s)"] + [f"× {n}" for n in args.times]
             + [f"{label} ÷ this" for label, _ in args.speedup] + ["CPU (s)", "peak RSS (MiB)"])
    print("| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    for n in rows:
        r = res[n]
        lo, hi = iqr(r["wall"])
        cells = ([n[len(args.only):], f"{med[n]:.3f}", f"{lo:.3f}–{hi:.3f}", f"{min(r['wall']):.3f}"]
                 + [f"{med[n] / med[ref[n, b]]:.2f}" for b in args.times]
                 + [f"{med[ref[n, b]] / med[n]:.2f}" for _, b in args.speedup]
                 + [f"{statistics.median(r['cpu']):.3f}", f"{max(r['rss']) / 1024:.1f}"])
        print("| " + " | ".join(cells) + " |")


def targets(args):
    res, med = load(args.times_json)
    checks = []  # (what, measured, limit, text of the numbers)
    for label, name, base, limit in args.ratio:
        for n in (name, base):
            if n not in med:
                sys.exit(f"bench.py: no command named {n!r} in {args.times_json}")
        ratio = med[name] / med[base]
        checks.append((label, f"{ratio:.2f}", f"≤ {limit}", ratio <= float(limit),
                       f"{name} {med[name]:.3f} s ÷ {base} {med[base]:.3f} s = {ratio:.2f}"))
    if args.rss is not None:
        rss = {n: max(r["rss"]) / 1024 for n, r in res.items()}
        top = max(rss, key=rss.get)
        checks.append(("peak RSS, all commands (MiB)", f"{rss[top]:.1f}", f"≤ {args.rss:g}",
                       rss[top] <= args.rss, f"largest {rss[top]:.1f} MiB ({top})"))
    if args.title:
        print(args.title)
        print()
    print("| target | measured | limit | met |")
    print("|---|---|---|---|")
    for label, value, limit, met, _ in checks:
        print(f"| {label} | {value} | {limit} | {'yes' if met else 'no'} |")
    print()
    for label, _, limit, met, numbers in checks:
        print(f"target {'met' if met else 'not met'}: {label}: {numbers} ({limit})")


def main():
    # `run`'s clauses are parsed by hand: argparse would take their words for its options.
    if len(sys.argv) >= 4 and sys.argv[1] == "run":
        run(argparse.Namespace(rounds=int(sys.argv[2]), out=sys.argv[3], clauses=sys.argv[4:]))
    elif len(sys.argv) >= 2 and sys.argv[1] == "table":
        ap = argparse.ArgumentParser(prog="bench.py table")
        ap.add_argument("times_json")
        ap.add_argument("--title")
        ap.add_argument("--only", default="", metavar="PREFIX")
        ap.add_argument("--times", action="append", default=[], metavar="NAME")
        ap.add_argument("--speedup", action="append", default=[], nargs=2, metavar=("LABEL", "NAME"))
        table(ap.parse_args(sys.argv[2:]))
    elif len(sys.argv) >= 2 and sys.argv[1] == "targets":
        ap = argparse.ArgumentParser(prog="bench.py targets")
        ap.add_argument("times_json")
        ap.add_argument("--title")
        ap.add_argument("--ratio", action="append", default=[], nargs=4, metavar=("LABEL", "NAME", "BASE", "MAX"))
        ap.add_argument("--rss", type=float, metavar="MIB")
        targets(ap.parse_args(sys.argv[2:]))
    else:
        sys.exit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main()
