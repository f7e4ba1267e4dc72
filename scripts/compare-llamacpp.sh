#!/usr/bin/env bash
# qeval's speed side by side with llama.cpp's on the same GGUF files, threads and text.
#
# Not run by CI; nothing of llama.cpp is committed. llama.cpp (llama-bench, llama-perplexity,
# llama-quantize) is built once, CPU only, from the vendored llama.cpp of the PyPI sdist of
# llama-cpp-python 0.3.36 into a cache folder, or an existing build there is reused.
#
# Side by side (default mode): llama-quantize --allow-requantize makes one GGUF per level from
# the source file (cached). For each level: llama-bench -p 512 -n 128 (pp512, tg128) and
# llama-perplexity -c 512 on the default eval set's text (eval-scoring tokens/s), then one
# `qeval bench --gguf LEVEL=FILE ...` over the same files. A memory-read benchmark (a small C
# program, OpenMP, the same thread count) gives the decode bound: bandwidth / weight bytes per
# token. Table on stdout; table.md, compare.json and every raw output in --out.
#
# --whole-run: the wall time of `qeval run --quants f16,q8_0,q4_k_m,q2_k --no-tasks` against
# the llama.cpp pipeline that measures the same: llama-quantize per level, llama-perplexity
# --kl-divergence-base on the f16 file, --kl-divergence per level, llama-bench per level.
#
# --parity: quality on llama.cpp's own files. llama-quantize makes the f16 file (from a quantized
# source with --allow-requantize, so both tools' reference is that dequantized f16) and one file
# per level from it; llama-perplexity --kl-divergence-base on the f16 file and --kl-divergence
# per level; `qeval run --gguf LEVEL=FILE ...` on the same files, text, context and chunks.
# Table: perplexity, mean KLD and top-1 agreement side by side, with the differences.
#
# Usage: scripts/compare-llamacpp.sh [options]
#   -t, --threads N       threads for both tools (default 2)
#   -r, --repeats N       llama-bench -r and qeval --repeats (default 3)
#   -l, --levels LIST     levels (qeval names), comma-separated, the most precise first
#                         (default f16,q8_0,q6_k,q4_k_m,q4_0,q4_1,q5_0,q5_1; with --whole-run
#                         f16,q8_0,q4_k_m,q2_k, the first being the KLD reference)
#   -c, --chunks K        llama-perplexity --chunks for the eval tokens/s (default 4); with
#                         --whole-run, the chunks both tools score (default: all)
#   -m, --model FILE      source GGUF (default ~/.cache/qeval/models/SmolLM2-135M-Instruct.Q4_1.gguf,
#                         fetched by scripts/fetch-models.sh)
#   -o, --out DIR         output folder (default reports/compare-llamacpp-<time>; ignored by git)
#   --whole-run           time the whole-run comparison instead of the side by side
#   --parity              quality parity on llama-quantize's files (default levels
#                         f16,q8_0,q6_k,q5_k_m,q4_k_m,q4_0,q3_k_m,q2_k; chunks default 8);
#                         files already in OUT/parity (f16.gguf, imatrix.gguf, LEVEL.gguf)
#                         are used as they are
#   --all                 both
#   --llama-ubatch N[:LEVELS]  with --parity: llama-perplexity --kl-divergence runs each level
#                         (or each of LEVELS, comma-separated) a second time with -ub N (other
#                         kernels, other summation orders: llama.cpp against itself), and the
#                         table shows how far its own top-1 agreement moves; qeval's distance
#                         from llama.cpp reads against that (-ub 8 is slow: about 3× the time)
#   --imatrix-chunks N    with --parity and i-quant levels (iq*): chunks of 512 llama-imatrix
#                         reads from wikitext-2's test split (default 16); every iq level is
#                         made with that importance matrix, as Hub uploaders make them
# Environment: QEVAL (the qeval binary, default target/release/qeval, built if missing),
#   QEVAL_LLAMACPP_CACHE (default ~/.cache/qeval-llamacpp), LLAMACPP_BIN (a folder holding
#   llama-bench, llama-perplexity, llama-quantize and llama-imatrix: skips the build; see
#   scripts/build-llamacpp.sh).
set -euo pipefail

die() { echo "compare-llamacpp: $*" >&2; exit 2; }
say() { echo "== $*" >&2; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
threads=2
repeats=3
imatrix_chunks=16
llama_ubatch=""
levels="f16,q8_0,q6_k,q4_k_m,q4_0,q4_1,q5_0,q5_1"
whole_levels="f16,q8_0,q4_k_m,q2_k"
chunks=""
model="$HOME/.cache/qeval/models/SmolLM2-135M-Instruct.Q4_1.gguf"
out=""
mode=side
levels_given=0
cache="${QEVAL_LLAMACPP_CACHE:-$HOME/.cache/qeval-llamacpp}"
qeval="${QEVAL:-$repo/target/release/qeval}"

while [ $# -gt 0 ]; do
  case "$1" in
    -t|--threads) threads="${2:?$1 needs a value}"; shift 2 ;;
    -r|--repeats) repeats="${2:?$1 needs a value}"; shift 2 ;;
    -l|--levels) levels="${2:?$1 needs a value}"; whole_levels="$2"; levels_given=1; shift 2 ;;
    -c|--chunks) chunks="${2:?$1 needs a value}"; shift 2 ;;
    -m|--model) model="${2:?$1 needs a value}"; shift 2 ;;
    -o|--out) out="${2:?$1 needs a value}"; shift 2 ;;
    --whole-run) mode=whole; shift ;;
    --parity) mode=parity; shift ;;
    --all) mode=all; shift ;;
    --imatrix-chunks) imatrix_chunks="${2:?$1 needs a value}"; shift 2 ;;
    --llama-ubatch) llama_ubatch="${2:?$1 needs a value}"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
for v in threads repeats imatrix_chunks; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "--$v '${!v}': give a whole number of at least 1"
done
ub_levels=""
if [[ "$llama_ubatch" == *:* ]]; then ub_levels="${llama_ubatch#*:}"; llama_ubatch="${llama_ubatch%%:*}"; fi
[ -z "$llama_ubatch" ] || [[ "$llama_ubatch" =~ ^[1-9][0-9]*$ ]] || die "--llama-ubatch '$llama_ubatch': give a whole number of at least 1, optionally :LEVELS"
[ -z "$chunks" ] || [[ "$chunks" =~ ^[1-9][0-9]*$ ]] || die "--chunks '$chunks': give a whole number of at least 1"
[ -f "$model" ] || die "--model $model: no such file (scripts/fetch-models.sh fetches the default one)"
command -v python3 >/dev/null || die "python3 is needed to parse the outputs"
out="${out:-$repo/reports/compare-llamacpp-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out" "$cache/models" || die "--out $out: cannot create"
out="$(cd "$out" && pwd)"

# qeval level name -> llama-quantize type.
ltype() {
  case "$1" in
    f16|q8_0|q6_k|q4_k_m|q4_0|q4_1|q5_0|q5_1|q2_k|q3_k_m|q4_k_s|q5_k_m|iq4_nl|iq4_xs) echo "$1" | tr a-z A-Z ;;
    # i-quants qeval reads but does not make: --parity only (llama-quantize makes both files).
    iq3_s|iq3_xxs|iq3_m|iq2_xs|iq2_xxs|iq2_s|iq2_m|iq1_s|iq1_m|tq1_0|tq2_0) echo "$1" | tr a-z A-Z ;;
    *) die "level '$1': not one both tools handle; use f16, q8_0, q6_k, q5_k_m, q4_k_m, q4_k_s, q3_k_m, q2_k, q5_0, q5_1, q4_0, q4_1, iq4_nl, iq4_xs (and with --parity iq3_s, iq3_xxs, iq3_m, iq2_xs, iq2_xxs, iq2_s, iq2_m, iq1_s, iq1_m, tq1_0, tq2_0)" ;;
  esac
}
IFS=, read -r -a level_list <<<"$levels"
IFS=, read -r -a whole_list <<<"$whole_levels"
for l in "${level_list[@]}" "${whole_list[@]}"; do ltype "$l" >/dev/null; done

# --- llama.cpp: reuse a build, or build it from the llama-cpp-python sdist ---
say "llama.cpp: finding or building it (scripts/build-llamacpp.sh; the first build takes about 10 minutes on 2 cores)"
bin="$(QEVAL_LLAMACPP_CACHE="$cache" bash "$repo/scripts/build-llamacpp.sh")" || die "no llama.cpp build"
say "llama.cpp: $bin"

# --- qeval ---
if [ ! -x "$qeval" ]; then
  say "building qeval (cargo build --release)"
  (cd "$repo" && cargo build --release) || die "cargo build --release failed"
fi
say "qeval: $qeval ($("$qeval" --version))"

# --- the eval text: the default eval set's text files, joined as qeval joins them ---
text="$out/evaltext.txt"
python3 "$repo/scripts/evaltext.py" "$repo/evalsets/default" "$text"

# --- memory-read bandwidth: a small C program (OpenMP, the same thread count) ---
membw() {
  local exe="$cache/membw"
  if [ ! -x "$exe" ]; then
    cat >"$cache/membw.c" <<'EOF'
/* Read bandwidth: sum a 1 GiB array of uint64 with OpenMP threads; best of 7 passes, GB/s. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <omp.h>
int main(void) {
  size_t n = (size_t)1 << 27; /* 2^27 x 8 bytes = 1 GiB */
  uint64_t *a = malloc(n * sizeof *a);
  if (!a) { fprintf(stderr, "no memory\n"); return 1; }
#pragma omp parallel for
  for (size_t i = 0; i < n; i++) a[i] = i;
  double best = 0; uint64_t sink = 0;
  for (int r = 0; r < 7; r++) {
    double t = omp_get_wtime(); uint64_t s = 0;
#pragma omp parallel for reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += a[i];
    t = omp_get_wtime() - t; sink += s;
    double gbs = n * sizeof *a / t / 1e9;
    if (gbs > best) best = gbs;
  }
  printf("%.3f\n", best);
  return sink == 42 ? 3 : 0;
}
EOF
    cc -O3 -march=native -mno-amx-tile -mno-amx-int8 -mno-amx-bf16 -fopenmp -o "$exe" "$cache/membw.c" ||
      cc -O3 -fopenmp -o "$exe" "$cache/membw.c" || die "cannot compile $cache/membw.c (needs cc with OpenMP)"
  fi
  OMP_NUM_THREADS="$threads" "$exe"
}

# Parse a llama-perplexity log (with --log-timestamps): scored windows x ctx / seconds between
# "calculating perplexity" and "Final estimate" (or the last KL divergence line).
ppl_tps() {
  python3 - "$1" <<'EOF'
import re, sys
t0 = t1 = None; chunks = ctx = None
def ts(line):
    m = re.match(r"\s*(\d+)\.(\d+)\.(\d+)\.(\d+) ", line)
    return int(m[1]) * 60 + int(m[2]) + int(m[3]) / 1e3 + int(m[4]) / 1e6 if m else None
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"calculating (?:perplexity|KL-divergence) over (\d+) chunks, n_ctx=(\d+)", line)
    if m: chunks, ctx, t0 = int(m[1]), int(m[2]), ts(line)
    if ("Final estimate" in line or "====== KL divergence" in line or "Mean    KLD" in line) and ts(line) is not None:
        t1 = ts(line) if t1 is None else t1
if None in (t0, t1, chunks):
    sys.exit(f"cannot find the timings in {sys.argv[1]}")
print(f"{chunks * ctx / (t1 - t0):.3f} {chunks} {ctx} {t1 - t0:.3f}")
EOF
}

qfile() { echo "$cache/models/$(basename "${model%.gguf}").$(ltype "$1").gguf"; }

side_by_side() {
  local eval_chunks="${chunks:-4}"
  say "side by side: levels $levels, $threads thread(s), $repeats repeat(s), eval on $eval_chunks chunk(s) of 512"
  local gguf_args=()
  for l in "${level_list[@]}"; do
    local f; f="$(qfile "$l")"
    if [ ! -f "$f" ]; then
      say "llama-quantize $l -> $f"
      "$bin/llama-quantize" --allow-requantize "$model" "$f.part" "$(ltype "$l")" "$threads" >"$out/quantize-$l.log" 2>&1 ||
        die "llama-quantize $l failed; see $out/quantize-$l.log"
      mv "$f.part" "$f"
    fi
    gguf_args+=(--gguf "$l=$f")
  done
  for l in "${level_list[@]}"; do
    say "llama-bench $l"
    # /usr/bin/time -v: llama-bench's maximum resident set size, beside qeval's peak RSS.
    /usr/bin/time -v "$bin/llama-bench" -m "$(qfile "$l")" -p 512 -n 128 -t "$threads" -r "$repeats" -o json \
      >"$out/llama-bench-$l.json" 2>"$out/llama-bench-$l.log" || die "llama-bench $l failed; see $out/llama-bench-$l.log"
    say "llama-perplexity $l"
    "$bin/llama-perplexity" -m "$(qfile "$l")" -f "$text" -c 512 -t "$threads" --chunks "$eval_chunks" \
      --log-timestamps --log-prefix --log-colors off >"$out/llama-perplexity-$l.log" 2>&1 ||
      die "llama-perplexity $l failed; see $out/llama-perplexity-$l.log"
    ppl_tps "$out/llama-perplexity-$l.log" >"$out/llama-perplexity-$l.tps"
  done
  # --quants names only levels qeval makes; the i-quants it only reads come in as labels.
  local qlevels=()
  for l in "${level_list[@]}"; do
    case "$l" in iq3_s|iq3_xxs|iq3_m|iq2_xs|iq2_xxs|iq2_s|iq2_m|iq1_s|iq1_m|tq1_0|tq2_0) ;; *) qlevels+=("$l") ;; esac
  done
  [ "${#qlevels[@]}" -gt 0 ] || die "--levels $levels: give at least one level qeval makes (f16, q8_0, ..., iq4_xs) beside the i-quants it only reads"
  say "qeval bench"
  "$qeval" bench --model "$model" --quants "$(IFS=,; echo "${qlevels[*]}")" "${gguf_args[@]}" --threads "$threads" \
    --repeats "$repeats" --prompt-tokens 512 --gen-tokens 128 --ctx 512 --out "$out/qeval-bench" --quiet \
    | tee "$out/qeval-bench.txt"
  say "memory bandwidth ($threads thread(s))"
  local bw; bw="$(membw)"
  echo "$bw" >"$out/membw.txt"
  python3 - "$out" "$bw" "$threads" "$levels" <<'EOF'
import json, sys, pathlib
out, bw, threads, levels = pathlib.Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4].split(",")
q = json.loads((out / "qeval-bench" / "results.json").read_text())
ql = {l["level"]: l for l in q["levels"]}
rows, raw = [], {"threads": int(threads), "membw_gb_per_s": bw,
                 "membw_method": "read bandwidth: OpenMP sum over a 1 GiB uint64 array, best of 7 (membw.c)",
                 "qeval_results": q, "levels": {}}
def med(l, k):
    s = l.get(k) if l and l.get("status") == "ok" else None
    return s["median"] if s else None
def ratio(a, b):
    return a / b if a and b else None
for lv in levels:
    lb = json.loads((out / f"llama-bench-{lv}.json").read_text())
    pp = next((t["avg_ts"] for t in lb if t["n_prompt"] > 0 and t["n_gen"] == 0), None)
    tg = next((t["avg_ts"] for t in lb if t["n_gen"] > 0 and t["n_prompt"] == 0), None)
    ppl_tps, n_chunks, ctx, secs = (out / f"llama-perplexity-{lv}.tps").read_text().split()
    ppl_tps = float(ppl_tps)
    l = ql.get(lv)
    qpp, qtg, qev = med(l, "prefill"), med(l, "decode"), med(l, "eval")
    wbytes = l["weight_bytes"] if l else 0
    bound = bw * 1e9 / wbytes if wbytes else None
    rss_kb = None
    for line in (out / f"llama-bench-{lv}.log").read_text(errors="replace").splitlines():
        if "Maximum resident set size" in line:
            rss_kb = int(line.split(":")[1])
    llama_rss_mb = rss_kb / 1e3 if rss_kb else None
    qeval_rss_mb = (l.get("peak_rss_bytes") or 0) / 1e6 if l else None
    r = dict(level=lv, weight_mb=wbytes / 1e6, llama_max_rss_mb=llama_rss_mb, qeval_peak_rss_mb=qeval_rss_mb,
             rss_q_over_l=ratio(qeval_rss_mb, llama_rss_mb), llama_file_bytes=lb[0]["model_size"] if lb else None,
             llama_pp512=pp, llama_tg128=tg, llama_ppl_tps=ppl_tps, llama_ppl_chunks=int(n_chunks),
             qeval_pp512=qpp, qeval_tg128=qtg, qeval_eval512=qev,
             ratio_pp=ratio(qpp, pp), ratio_tg=ratio(qtg, tg), ratio_eval=ratio(qev, ppl_tps),
             decode_bound_tps=bound, qeval_frac_of_bound=ratio(qtg, bound),
             llama_frac_of_bound=ratio(tg, bound), kernels=l.get("kernels") if l else None)
    rows.append(r); raw["levels"][lv] = {"summary": r, "llama_bench": lb}
f = lambda v, p=1: "-" if v is None else f"{v:.{p}f}"
heads = ["level", "weight MB", "llama pp512", "llama tg128", "llama ppl t/s", "qeval pp512", "qeval tg128",
         "qeval eval t/s", "pp q/l", "tg q/l", "eval q/l", "tg bound", "qeval tg/bound", "llama RSS MB",
         "qeval RSS MB", "RSS q/l"]
cells = [[r["level"], f(r["weight_mb"]), f(r["llama_pp512"]), f(r["llama_tg128"]), f(r["llama_ppl_tps"]),
          f(r["qeval_pp512"]), f(r["qeval_tg128"]), f(r["qeval_eval512"]), f(r["ratio_pp"], 2),
          f(r["ratio_tg"], 2), f(r["ratio_eval"], 2), f(r["decode_bound_tps"]),
          "-" if r["qeval_frac_of_bound"] is None else f"{100 * r['qeval_frac_of_bound']:.0f}%",
          f(r["llama_max_rss_mb"], 0), f(r["qeval_peak_rss_mb"], 0), f(r["rss_q_over_l"], 2)] for r in rows]
w = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
line = lambda cs: "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(cs))
dev = q["device"]
n_rep = max((len(l["prefill"]["samples"]) for l in ql.values() if l.get("prefill")), default=0)
head = (f"{q['model']['name']} on {dev['name']}, {threads} thread(s); tokens/s, medians (llama-bench: means) of "
        f"{n_rep} repeat(s); "
        f"memory read bandwidth {bw:.1f} GB/s (membw.c); tg bound = bandwidth / weight bytes per token; "
        f"qeval kernels: {', '.join(sorted({r['kernels'] or '-' for r in rows}))}")
print(head); print(line(heads)); print("  ".join("-" * n for n in w))
for c in cells: print(line(c))
md = [head, "", "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
md += ["| " + " | ".join(c) + " |" for c in cells]
md += ["", "llama.cpp: llama-bench -p 512 -n 128 (pp512, tg128) and llama-perplexity -c 512 (tokens scored / seconds "
       "from 'calculating' to 'Final estimate', its default batching of 4 windows per pass, no warm-up); qeval: "
       "`qeval bench` on the same GGUF files (eval t/s: one 512-token window per repeat, after a warm-up). "
       "Memory: llama-bench's maximum resident set size (/usr/bin/time -v) against qeval's peak RSS of the level's worker process."]
(out / "table.md").write_text("\n".join(md) + "\n")
(out / "compare.json").write_text(json.dumps(raw, indent=1))
print(f"\nwritten: {out / 'table.md'}, {out / 'compare.json'}")
EOF
}

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }

whole_run() {
  local chunk_args=()
  [ -z "$chunks" ] || chunk_args=(--chunks "$chunks")
  local w="$out/whole-run"
  rm -rf "$w"; mkdir -p "$w/llamacpp"
  say "whole run: qeval run --quants $whole_levels --no-tasks ${chunk_args[*]} --threads $threads --repeats $repeats"
  local t0 t1 q_s l_s
  t0="$(now)"
  "$qeval" run --model "$model" --quants "$whole_levels" --no-tasks "${chunk_args[@]}" --threads "$threads" \
    --repeats "$repeats" --out "$w/qeval" --quiet >"$w/qeval.txt" 2>&1 || die "qeval run failed; see $w/qeval.txt"
  t1="$(now)"; q_s="$(elapsed "$t0" "$t1")"
  say "whole run: the llama.cpp pipeline"
  local steps=() s0 ref="" f
  t0="$(now)"
  for l in "${whole_list[@]}"; do
    f="$w/llamacpp/$l.gguf"; s0="$(now)"
    "$bin/llama-quantize" --allow-requantize "$model" "$f" "$(ltype "$l")" "$threads" >"$w/llamacpp/quantize-$l.log" 2>&1 ||
      die "llama-quantize $l failed; see $w/llamacpp/quantize-$l.log"
    steps+=("quantize $l: $(elapsed "$s0" "$(now)") s")
    [ -n "$ref" ] || ref="$l"
  done
  s0="$(now)"
  "$bin/llama-perplexity" -m "$w/llamacpp/$ref.gguf" -f "$text" -c 512 -t "$threads" "${chunk_args[@]}" \
    --kl-divergence-base "$w/llamacpp/base.kld" >"$w/llamacpp/ppl-$ref.log" 2>&1 ||
    die "llama-perplexity (KLD base) failed; see $w/llamacpp/ppl-$ref.log"
  steps+=("perplexity + KLD base $ref: $(elapsed "$s0" "$(now)") s")
  for l in "${whole_list[@]}"; do
    [ "$l" != "$ref" ] || continue
    s0="$(now)"
    "$bin/llama-perplexity" -m "$w/llamacpp/$l.gguf" -f "$text" -c 512 -t "$threads" "${chunk_args[@]}" \
      --kl-divergence-base "$w/llamacpp/base.kld" --kl-divergence >"$w/llamacpp/kld-$l.log" 2>&1 ||
      die "llama-perplexity --kl-divergence $l failed; see $w/llamacpp/kld-$l.log"
    steps+=("KLD $l: $(elapsed "$s0" "$(now)") s")
  done
  for l in "${whole_list[@]}"; do
    s0="$(now)"
    "$bin/llama-bench" -m "$w/llamacpp/$l.gguf" -p 512 -n 128 -t "$threads" -r "$repeats" -o json \
      >"$w/llamacpp/bench-$l.json" 2>"$w/llamacpp/bench-$l.log" || die "llama-bench $l failed; see $w/llamacpp/bench-$l.log"
    steps+=("bench $l: $(elapsed "$s0" "$(now)") s")
  done
  t1="$(now)"; l_s="$(elapsed "$t0" "$t1")"
  rm -f "$w"/llamacpp/*.gguf "$w/llamacpp/base.kld"
  {
    echo "Whole run ($whole_levels, ${chunks:-all} chunk(s) of 512, $threads thread(s), $repeats repeat(s), no tasks):"
    echo "  qeval run:          $q_s s"
    echo "  llama.cpp pipeline: $l_s s"
    printf '    %s\n' "${steps[@]}"
    python3 -c "import sys; q, l = map(float, sys.argv[1:]); print(f'  qeval / llama.cpp: {q / l:.2f}x')" "$q_s" "$l_s"
  } | tee "$w/whole-run.txt"
  python3 - "$w/whole-run.json" "$q_s" "$l_s" "$whole_levels" "${chunks:-all}" "$threads" "$repeats" "${steps[@]}" <<'EOF'
import json, sys
a = sys.argv
json.dump({"qeval_run_s": float(a[2]), "llamacpp_pipeline_s": float(a[3]), "levels": a[4].split(","),
           "chunks": a[5], "threads": int(a[6]), "repeats": int(a[7]), "llamacpp_steps": a[8:]},
          open(a[1], "w"), indent=1)
EOF
}

parity() {
  local plevels="$levels"
  [ "$levels_given" = 1 ] || plevels="f16,q8_0,q6_k,q5_k_m,q4_k_m,q4_0,q3_k_m,q2_k"
  local pchunks="${chunks:-8}" w="$out/parity" l f
  mkdir -p "$w"
  rm -f "$w"/llama-*-ub.log  # an earlier run's self-check is not this run's
  IFS=',' read -ra plist <<<"$plevels"
  [ "${plist[0]}" = f16 ] || die "--parity: the first level must be f16 (the KLD reference)"
  local f16="$w/f16.gguf"
  # Files already in OUT/parity (f16.gguf, imatrix.gguf, LEVEL.gguf: an earlier run's, or
  # links to llama-quantize's files made by hand) are used as they are.
  if [ ! -f "$f16" ]; then
    say "parity: llama-quantize F16 (the reference both tools use)"
    "$bin/llama-quantize" --allow-requantize "$model" "$f16.part" F16 "$threads" >"$w/quantize-f16.log" 2>&1 ||
      die "llama-quantize F16 failed; see $w/quantize-f16.log"
    mv "$f16.part" "$f16"
  fi
  # The i-quants are made as Hub uploaders make them: with an importance matrix, computed by
  # llama-imatrix on the f16 file over text the evaluation does not use (wikitext-2's test
  # split from shared/evaldata, $imatrix_chunks chunks of 512).
  local imat="" need_imat=0
  for l in "${plist[@]}"; do case "$l" in iq*) need_imat=1 ;; esac; done
  if [ "$need_imat" = 1 ]; then
    [ -x "$bin/llama-imatrix" ] || die "no llama-imatrix in $bin (scripts/build-llamacpp.sh builds it)"
    local calib="${QEVAL_CALIBRATION_TEXT:-$repo/../shared/evaldata/wikitext-2-raw/wiki.test.raw}"
    [ -f "$calib" ] || die "no calibration text $calib for llama-imatrix (set QEVAL_CALIBRATION_TEXT)"
    imat="$w/imatrix.gguf"
    if [ ! -f "$imat" ]; then
      say "parity: llama-imatrix on $(basename "$calib") ($imatrix_chunks chunks of 512)"
      "$bin/llama-imatrix" -m "$f16" -f "$calib" -c 512 --chunks "$imatrix_chunks" -t "$threads" -o "$imat" \
        >"$w/imatrix.log" 2>&1 || die "llama-imatrix failed; see $w/imatrix.log"
    fi
  fi
  local gguf_args=()
  for l in "${plist[@]}"; do
    f="$w/$l.gguf"
    if [ "$l" != f16 ]; then
      if [ ! -f "$f" ]; then
        say "parity: llama-quantize $l"
        local imat_args=()
        case "$l" in iq*) imat_args=(--imatrix "$imat") ;; esac
        "$bin/llama-quantize" "${imat_args[@]}" "$f16" "$f.part" "$(ltype "$l")" "$threads" >"$w/quantize-$l.log" 2>&1 ||
          die "llama-quantize $l failed; see $w/quantize-$l.log"
        mv "$f.part" "$f"
      fi
    else
      f="$f16"
    fi
    # A level qeval does not make (iq3_s ...) is a labelled file; the others keep their name.
    gguf_args+=(--gguf "$l=$f")
  done
  say "parity: llama-perplexity (KLD base f16, $pchunks chunks of 512)"
  "$bin/llama-perplexity" -m "$f16" -f "$text" -c 512 -t "$threads" --chunks "$pchunks" \
    --kl-divergence-base "$w/base.kld" >"$w/llama-f16.log" 2>&1 || die "llama-perplexity f16 failed; see $w/llama-f16.log"
  for l in "${plist[@]}"; do
    [ "$l" != f16 ] || continue
    say "parity: llama-perplexity --kl-divergence $l"
    "$bin/llama-perplexity" -m "$w/$l.gguf" -f "$text" -c 512 -t "$threads" --chunks "$pchunks" \
      --kl-divergence-base "$w/base.kld" --kl-divergence >"$w/llama-$l.log" 2>&1 ||
      die "llama-perplexity --kl-divergence $l failed; see $w/llama-$l.log"
    if [ -n "$llama_ubatch" ] && { [ -z "$ub_levels" ] || [[ ",$ub_levels," == *",$l,"* ]]; }; then
      say "parity: llama-perplexity --kl-divergence $l -ub $llama_ubatch (llama.cpp against itself)"
      "$bin/llama-perplexity" -m "$w/$l.gguf" -f "$text" -c 512 -t "$threads" --chunks "$pchunks" -ub "$llama_ubatch" \
        --kl-divergence-base "$w/base.kld" --kl-divergence >"$w/llama-$l-ub.log" 2>&1 ||
        die "llama-perplexity --kl-divergence $l -ub $llama_ubatch failed; see $w/llama-$l-ub.log"
    fi
  done
  say "parity: qeval run on the same files"
  "$qeval" run --model "$f16" --quants f16 "${gguf_args[@]}" --no-tasks --chunks "$pchunks" --ctx 512 \
    --threads "$threads" --repeats 1 --out "$w/qeval" --quiet >"$w/qeval.txt" 2>&1 || die "qeval run failed; see $w/qeval.txt"
  python3 - "$w" "$plevels" "$pchunks" "$llama_ubatch" <<'EOF'
import json, re, sys, pathlib
w, levels, chunks, ub = pathlib.Path(sys.argv[1]), sys.argv[2].split(","), sys.argv[3], sys.argv[4]
q = {l["level"]: l for l in json.loads((w / "qeval" / "results.json").read_text())["levels"]}
def grab(text, pat):
    m = re.search(pat, text)
    return float(m.group(1)) if m else None
rows = []
for l in levels:
    t = (w / f"llama-{l}.log").read_text(errors="replace")
    if l == "f16":
        ppl, kld, top = grab(t, r"Final estimate: PPL = ([0-9.]+)"), 0.0, 100.0
    else:
        ppl = grab(t, r"Mean PPL\(Q\)\s*:\s*([0-9.]+)")
        kld = grab(t, r"Mean\s+KLD:\s*([0-9.eE+-]+)")
        top = grab(t, r"Same top p:\s*([0-9.]+)")
    ql = q[l]
    qp, qk = ql.get("perplexity"), ql.get("kld_mean") or 0.0
    qt = 100.0 * (ql.get("top1_agreement") if ql.get("top1_agreement") is not None else 1.0)
    row = dict(level=l, llama_ppl=ppl, qeval_ppl=qp, ppl_diff_pct=100 * (qp - ppl) / ppl,
               llama_kld=kld, qeval_kld=qk, kld_diff_pct=(100 * (qk - kld) / kld) if kld else 0.0,
               llama_top1=top, qeval_top1=qt, top1_diff_points=qt - top)
    if ub:
        ulog = w / f"llama-{l}-ub.log"
        if l == "f16":
            row.update(llama_ub_top1=100.0, llama_ub_diff_points=0.0)
        elif not ulog.exists():
            row.update(llama_ub_top1=None, llama_ub_diff_points=None)
        else:
            ut = grab((w / f"llama-{l}-ub.log").read_text(errors="replace"), r"Same top p:\s*([0-9.]+)")
            row.update(llama_ub_top1=ut, llama_ub_diff_points=ut - top)
    rows.append(row)
md = [f"Quality parity on llama-quantize's files ({chunks} chunks of 512 of the default eval set's text; reference: the f16 file)", "",
      "| level | llama PPL | qeval PPL | Δ PPL | llama KLD | qeval KLD | Δ KLD | llama top-1 % | qeval top-1 % | Δ points |"
      + (f" llama -ub {ub} top-1 % | Δ points, llama.cpp against itself |" if ub else ""),
      "|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if ub else "")]
for r in rows:
    md.append(f"| {r['level']} | {r['llama_ppl']:.4f} | {r['qeval_ppl']:.4f} | {r['ppl_diff_pct']:+.3f}% | {r['llama_kld']:.6f} | "
              f"{r['qeval_kld']:.6f} | {r['kld_diff_pct']:+.2f}% | {r['llama_top1']:.3f} | {r['qeval_top1']:.3f} | {r['top1_diff_points']:+.3f} |"
              + ((f" {r['llama_ub_top1']:.3f} | {r['llama_ub_diff_points']:+.3f} |" if r["llama_ub_top1"] is not None
                  else " | |") if ub else ""))
(w / "parity.md").write_text("\n".join(md) + "\n")
(w / "parity.json").write_text(json.dumps(rows, indent=1))
print("\n".join(md))
EOF
  rm -f "$w"/*.gguf "$w/base.kld"
}

case "$mode" in
  parity) parity ;;
  side) side_by_side ;;
  whole) whole_run ;;
  all) side_by_side; whole_run ;;
esac
say "outputs in $out"
