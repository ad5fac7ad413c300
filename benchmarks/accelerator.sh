#!/usr/bin/env bash
# The accelerator figures of issue 15, in one call on a GPU machine (at most ~8 minutes).
#
#   bash benchmarks/accelerator.sh CORPUS OUTDIR
#
# CORPUS: the 17 M-word corpus (../shared/data/corpora/enwiki2015_text8style.zip); ../shared does
# not travel to a lent device machine, so copy it into an ignored folder and carry that folder:
#   mkdir -p .gpu_data && cp ../shared/data/corpora/enwiki2015_text8style.zip .gpu_data/
#   echo /.gpu_data/ >> .git/info/exclude
#   run: bash benchmarks/accelerator.sh .gpu_data/enwiki2015_text8style.zip $OUT   (carry .gpu_data)
# Without it, the embedded 2.1 M-word sample.  Needs jax with the accelerator's plugin, optax,
# flax, orbax-checkpoint (no network, no gensim: compare with the committed CPU tables); runs
# the project from source.
#
# Per run: `w2vjax train` for EPOCHS (default 1) with evaluation, the engine engines.choose picks
# at the default batch (the XLA engine with device windows; on a GPU skip-gram/NS takes 16384
# pairs, CBOW 1024 windows, skip-gram/HS 4096 pairs), for skip-gram/NS, CBOW/NS and skip-gram/HS,
# each without and with XLA_FLAGS=--xla_gpu_ftz=true, then skip-gram/NS, CBOW/NS and skip-gram/HS
# with --pallas, skip-gram/NS at 4096 pairs (the default before) and at 65536 with both engines.
# Each run's line (raw words/s of the training loop, whole-process seconds, analogy,
# WS-353, SimLex) is appended to OUTDIR/runs.md as soon as it ends, so a run cut short still
# leaves what it finished; OUTDIR/devices.txt says what ran, on what, at which commit.
# RUNS="sg-ns cbow-ns" picks runs; EXTRA adds train flags (e.g. "--max-vocab 5000" for a CPU check).
set -uo pipefail
corpus=${1:-w2vjax/data/text8_head.txt.gz}
dest=${2:-benchmarks/results/accelerator}
epochs=${EPOCHS:-1}
mkdir -p "$dest"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
work=$(mktemp -d)
status=0
$py -c "import jax, platform; print('jax', jax.__version__, 'python', platform.python_version()); \
print(jax.devices()); print(jax.devices()[0].device_kind); import subprocess; \
print('commit', subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout)" \
    > "$dest/devices.txt" 2>&1 || status=1
cat "$dest/devices.txt"
echo "| run | flags | XLA_FLAGS | engine | batch | raw words/s (loop) | train s | process s | analogy % | WS-353 | SimLex-999 |" > "$dest/runs.md"
echo "|---|---|---|---|---|---|---|---|---|---|---|" >> "$dest/runs.md"
one() {  # name, XLA_FLAGS, flags...
    local name=$1 xf=$2; shift 2
    local wd="$work/$name" t0 t1
    t0=$(date +%s.%N)
    XLA_FLAGS="$xf" $py -m w2vjax train "$corpus" --workdir "$wd" --epochs "$epochs" --quiet "$@" ${EXTRA:-} \
        > "$wd.log" 2>&1 || { status=1; echo "| $name | $* | $xf | FAILED: $(tail -n 1 "$wd.log") |" >> "$dest/runs.md"; return; }
    t1=$(date +%s.%N)
    $py - "$wd/summary.json" "$name" "$*" "$xf" "$(echo "$t1 - $t0" | bc)" >> "$dest/runs.md" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); e = s.get("eval", {})
an, ws, sl = e.get("analogy_total"), e.get("ws353_spearman"), e.get("simlex999_spearman")
fmt = lambda v, f: f.format(v) if isinstance(v, (int, float)) else str(v)
rows = s.get("device_rows")
batch = f"{rows[0]} x {rows[1]} token rows" if rows else "host stream"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {s['engine']} | {batch} | "
      f"{s['raw_words_per_s']:,.0f} | {s['train_seconds']:.1f} | {float(sys.argv[5]):.1f} | "
      f"{fmt(an, '{:.2%}')} | {fmt(ws, '{:.3f}')} | {fmt(sl, '{:.3f}')} |")
PY
    tail -n 1 "$dest/runs.md"
}
# most telling first (a run cut short keeps what ended): the default and the fused kernel at the
# default batch (16384 pairs, where benchmarks/roofline.py puts the fused kernel above 50 M raw
# words/s), then the same at 4096 pairs
for r in ${RUNS:-sg-ns sg-ns-pallas sg-ns-4k sg-ns-pallas-4k cbow-ns sg-hs sg-ns-ftz cbow-ns-ftz sg-hs-ftz cbow-ns-pallas sg-hs-pallas sg-ns-64k sg-ns-pallas-64k}; do
    case $r in
        sg-ns) one $r "" --model skipgram --loss ns ;;
        sg-ns-4k) one $r "" --model skipgram --loss ns --batch-size 4096 ;;
        sg-ns-pallas-4k) one $r "" --model skipgram --loss ns --pallas --batch-size 4096 ;;
        sg-ns-64k) one $r "" --model skipgram --loss ns --batch-size 65536 ;;
        sg-ns-pallas-64k) one $r "" --model skipgram --loss ns --pallas --batch-size 65536 ;;
        cbow-ns) one $r "" --model cbow --loss ns ;;
        sg-hs) one $r "" --model skipgram --loss hs ;;
        sg-ns-ftz) one $r "--xla_gpu_ftz=true" --model skipgram --loss ns ;;
        cbow-ns-ftz) one $r "--xla_gpu_ftz=true" --model cbow --loss ns ;;
        sg-hs-ftz) one $r "--xla_gpu_ftz=true" --model skipgram --loss hs ;;
        sg-ns-pallas) one $r "" --model skipgram --loss ns --pallas ;;
        cbow-ns-pallas) one $r "" --model cbow --loss ns --pallas ;;
        sg-hs-pallas) one $r "" --model skipgram --loss hs --pallas ;;
    esac
done
rm -rf "$work"
exit $status
