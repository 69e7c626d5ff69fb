#!/usr/bin/env python3
"""Load generator for `strata serve`: C concurrent streaming chat clients over
loopback, for each C in --concurrency. Reports aggregate generated tokens/s
(every content chunk of every stream over the wall time of the round) and
the p50/p99 inter-token latency (gaps between consecutive chunks of one
stream), plus the speed-up of each round over one stream. Figures are
printed, never asserted.

    python benchmarks/serve_loadgen.py --url http://127.0.0.1:8080 --model NAME \\
        --concurrency 1,4,8,16 --tokens 32 [--rounds 3] [--json]

or let it start the server (and, with --make-model, a synthetic model):

    python benchmarks/serve_loadgen.py --strata build/tools/strata \\
        --make-model qwen3-30b-a3b --layers 8 --concurrency 1,4,8,16
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def stream_one(url, model, prompt, n_tokens, seed, temperature, out):
    """One streaming request; appends the arrival time of every content chunk."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": n_tokens,
                       "temperature": temperature, "seed": seed, "stream": True}).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    times = []
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=3600) as r:
        for raw in r:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                times.append(time.perf_counter())
    out.append((t0, times))


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def run_round(url, model, c, n_tokens, seed0, temperature=1.0):
    results, errors = [], []

    def worker(i):
        try:
            stream_one(url, model, f"Request {i}: tell me a long story about the sea.", n_tokens, seed0 + i, temperature,
                       results)
        except Exception as e:  # noqa: BLE001 - reported
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(c)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} of {c} streams failed: {errors[0]}")
    n = sum(len(times) for _, times in results)
    gaps = [b - a for _, times in results for a, b in zip(times, times[1:])]
    ttft = [times[0] - start for start, times in results if times]
    return {"concurrency": c, "tokens": n, "wall_s": wall, "tok_s": n / wall,
            "itl_p50_ms": 1000 * percentile(gaps, 50), "itl_p99_ms": 1000 * percentile(gaps, 99),
            "ttft_p50_ms": 1000 * percentile(ttft, 50)}


def start_server(args):
    model = args.model_file
    if args.make_model:
        skew = f"-skew{args.routing_skew:g}" if args.routing_skew else ""
        model = os.path.join(args.workdir, f"{args.make_model}-{args.layers}l{skew}.gguf")
        if not os.path.exists(model):
            vocab = os.path.join(args.shared, "data", "vocab", "ggml-vocab-gpt-2.gguf")
            print(f"making {model} ...", file=sys.stderr)
            subprocess.run([args.strata, "mkmodel", "--preset", args.make_model, "--layers", str(args.layers),
                            "--vocab-from", vocab, "--routing-skew", str(args.routing_skew), "-q", "-o", model],
                           check=True)
    cmd = [args.strata, "serve", "-m", model, "--port", "0", "--parallel", str(max(args.concurrency_list)),
           "--ctx-size", str(args.ctx)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    port, log = None, []
    for line in proc.stderr:
        log.append(line)
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
        if "strata serve: ready" in line:
            break
    if port is None or proc.poll() is not None:
        raise RuntimeError("server did not start:\n" + "".join(log))
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    name = os.path.basename(model).removesuffix(".gguf")
    return proc, f"http://127.0.0.1:{port}", name, "".join(log)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server")
    ap.add_argument("--model", help="model id (with --url)")
    ap.add_argument("--strata", help="start this strata binary instead")
    ap.add_argument("--model-file", help="GGUF to serve (with --strata)")
    ap.add_argument("--make-model", help="mkmodel preset to serve (with --strata)")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--routing-skew", type=float, default=0,
                    help="with --make-model: some experts far more popular (1-2: like real models)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
    ap.add_argument("--concurrency", default="1,4,8,16")
    ap.add_argument("--tokens", type=int, default=32, help="tokens per stream")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per concurrency (median reported)")
    ap.add_argument("--temperature", type=float, default=1.0, help="0: greedy (no sampling cost)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.concurrency_list = [int(x) for x in args.concurrency.split(",")]

    proc = None
    if args.strata:
        proc, url, model, log = start_server(args)
        print(log, file=sys.stderr)
    else:
        url, model = args.url, args.model
    try:
        run_round(url, model, 1, 4, 0)  # warm-up
        rows = []
        for c in args.concurrency_list:
            rs = [run_round(url, model, c, args.tokens, 1000 * r, args.temperature) for r in range(args.rounds)]
            best = sorted(rs, key=lambda r: r["tok_s"])[len(rs) // 2]  # the median round by throughput
            best["tok_s_min"] = min(r["tok_s"] for r in rs)
            best["tok_s_max"] = max(r["tok_s"] for r in rs)
            rows.append(best)
        base = rows[0]["tok_s"] if rows and rows[0]["concurrency"] == 1 else None
        for r in rows:
            r["speedup_vs_1"] = r["tok_s"] / base if base else None
        if args.json:
            print(json.dumps({"model": model, "tokens_per_stream": args.tokens, "rounds": args.rounds, "rows": rows},
                             indent=2))
        else:
            print(f"model {model}, {args.tokens} tokens per stream, temperature {args.temperature}, "
                  f"median of {args.rounds} rounds")
            print("| streams | tok/s (min-max) | x 1 stream | ITL p50 ms | ITL p99 ms | TTFT p50 ms |")
            print("| --- | --- | --- | --- | --- | --- |")
            for r in rows:
                sp = f"{r['speedup_vs_1']:.2f}" if r["speedup_vs_1"] else "-"
                print(f"| {r['concurrency']} | {r['tok_s']:.2f} ({r['tok_s_min']:.2f}-{r['tok_s_max']:.2f}) | {sp} | "
                      f"{r['itl_p50_ms']:.1f} | {r['itl_p99_ms']:.1f} | {r['ttft_p50_ms']:.0f} |")
        if proc:
            metrics = urllib.request.urlopen(url + "/metrics").read().decode()
            for line in metrics.splitlines():
                if line.startswith("strata_weight_bytes_per_token{tier=\"dram\"}") or line.startswith("strata_steps_total"):
                    print(line, file=sys.stderr)
    finally:
        if proc:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
