#!/usr/bin/env python3
"""Helper of bench/overlap.sh: the overlap of five segments against the slowest one alone.

    run URL SITE_UUID PK SK --rounds N --out FILE
            creates eval.sh's suite of segments (bench/eval_helper.py) on the server at URL
            (after discarding the segments an earlier run left), makes the site resident
            (a preview of `{}`), then:
            1. times `GET /api/v1/stats/segment` of every segment of the suite, N rounds
               after one warm-up call each, and takes the five with the highest median:
               the hardest five to evaluate together;
            2. times, N rounds after one warm-up, in the same rounds (the order turning
               each round): `POST /api/v1/stats/overlap` of those five, and the stats of
               each of them alone;
            3. checks the overlap against the stats: each segment's members are the
               regions it is in.
            Writes every figure to FILE as JSON.
    table FILE
            prints the Markdown report of FILE: the five segments' medians alone, the
            overlap's median and p90, and its ratio to the slowest alone (goal: at most 2).

The standard library only (eval_helper's Corral client and suite).
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_helper  # noqa: E402

# Names of the segments this benchmark creates; those of earlier runs are discarded.
eval_helper.NAME_PREFIX = "overlap: "
# The goal: five segments together take at most this many times the slowest one alone.
GOAL = 2.0
FIVE = 5


def fail(message):
    print(f"overlap_helper: {message}", file=sys.stderr)
    sys.exit(1)


def median_ms(seconds):
    return statistics.median(seconds) * 1000


def p90_ms(seconds):
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1000


def overlap_call(corral, ids):
    status, text, seconds = corral.call("POST", "/stats/overlap", {"segment_ids": ids})
    if status != 200:
        fail(f"POST /api/v1/stats/overlap answered {status}: {text[:500]!r}")
    return json.loads(text)["data"], seconds


def cmd_run(args):
    corral = eval_helper.Corral(args.url, args.site, args.pk, args.sk)
    discarded = corral.discard_earlier_runs()
    ids = {}
    for segment in eval_helper.SUITE:
        ids[segment["name"]] = corral.create(segment["name"],
                                             eval_helper.resolve(segment["query"], ids))
    first_load = corral.first_load()
    print(f"created {len(ids)} segments (discarded {discarded} of earlier runs); "
          f"first load {first_load:.2f} s", file=sys.stderr)

    # 1. Every segment alone: which five are the slowest.
    alone = {name: [] for name in ids}
    for name, segment_id in ids.items():
        corral.stats(segment_id)
    for r in range(args.rounds):
        names = list(ids)
        names = names[r % len(names):] + names[:r % len(names)]
        for name in names:
            _, seconds = corral.stats(ids[name])
            alone[name].append(seconds)
    ranked = sorted(ids, key=lambda n: median_ms(alone[n]), reverse=True)
    five = ranked[:FIVE]
    print("slowest five alone: " + ", ".join(f"{n} {median_ms(alone[n]):.2f} ms" for n in five),
          file=sys.stderr)

    # 2. The five together, and each alone, in the same rounds.
    five_ids = [ids[n] for n in five]
    overlap_call(corral, five_ids)
    together = []
    again = {n: [] for n in five}
    counts = {}
    for r in range(args.rounds):
        calls = [("overlap", None)] + [("alone", n) for n in five]
        calls = calls[r % len(calls):] + calls[:r % len(calls)]
        for kind, name in calls:
            if kind == "overlap":
                answer, seconds = overlap_call(corral, five_ids)
                together.append(seconds)
            else:
                found, seconds = corral.stats(ids[name])
                counts[name] = found[0]
                again[name].append(seconds)

    # 3. The overlap against the stats (the audience is at rest).
    regions = answer["regions"]
    if len(regions) != 2 ** FIVE - 1:
        fail(f"{len(regions)} regions, not {2 ** FIVE - 1}")
    for name in five:
        within = sum(r["user_count"] for r in regions if ids[name] in r["in"])
        if within != counts[name]:
            fail(f"{name}: the regions it is in hold {within}, its stats say {counts[name]}")

    with open(args.out, "w", encoding="utf-8") as out:
        json.dump({
            "rounds": args.rounds,
            "first_load_seconds": first_load,
            "suite_alone": alone,
            "five": five,
            "five_alone": again,
            "together": together,
            "union": answer["union"],
            "intersection": answer["intersection"],
            "members": counts,
        }, out, indent=1)


def cmd_table(path):
    with open(path, encoding="utf-8") as f:
        run = json.load(f)
    five = run["five"]
    lines = [
        "| segment | members | alone, median | alone, p90 |",
        "|---|---:|---:|---:|",
    ]
    for name in five:
        seconds = run["five_alone"][name]
        lines.append(f"| {name} | {run['members'][name]:,} | {median_ms(seconds):.2f} ms "
                     f"| {p90_ms(seconds):.2f} ms |")
    together = run["together"]
    slowest = max(five, key=lambda n: median_ms(run["five_alone"][n]))
    ratio = median_ms(together) / median_ms(run["five_alone"][slowest])
    total = sum(median_ms(run["five_alone"][n]) for n in five)
    lines.append(f"| **the five together** (`POST /stats/overlap`, 31 regions; union "
                 f"{run['union']:,}, intersection {run['intersection']:,}) | | "
                 f"**{median_ms(together):.2f} ms** | {p90_ms(together):.2f} ms |")
    lines.append("")
    verdict = "met" if ratio <= GOAL else "**not met**"
    lines.append(f"Together: **{ratio:.2f}×** the slowest alone ({slowest}, "
                 f"{median_ms(run['five_alone'][slowest]):.2f} ms); "
                 f"{median_ms(together) / total:.2f}× the sum of the five alone "
                 f"({total:.2f} ms). Goal at most {GOAL:g}×: {verdict}. "
                 f"{run['rounds']} rounds; medians.")
    print("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("url")
    run.add_argument("site")
    run.add_argument("pk")
    run.add_argument("sk")
    run.add_argument("--rounds", type=int, default=15)
    run.add_argument("--out", required=True)
    table = sub.add_parser("table")
    table.add_argument("file")
    args = parser.parse_args()
    if args.command == "run":
        cmd_run(args)
    else:
        cmd_table(args.file)


if __name__ == "__main__":
    main()
