#!/usr/bin/env bash
# Everything issue 3's GPU target needs measured, in one call on a GPU/TPU machine.
#
#   bash benchmarks/accelerator.sh CORPUS OUTDIR
#
# CORPUS: the 16.9 M-word corpus (../shared/data/corpora/enwiki2015_text8style.zip); ../shared
# does not travel to a lent device machine, so copy it into an ignored folder of the checkout
# and carry that folder:
#   mkdir -p .gpu_data && cp ../shared/data/corpora/enwiki2015_text8style.zip .gpu_data/
#   echo /.gpu_data/ >> .git/info/exclude
#   run: bash benchmarks/accelerator.sh .gpu_data/enwiki2015_text8style.zip $OUT   (carry .gpu_data)
# Without one, it uses the embedded 2.1 M-word sample.  Needs jax with the accelerator's plugin,
# optax, flax, orbax-checkpoint and pytest (no network, no gensim: the CPU tables give gensim's
# figures); runs the project from source.
#
# Writes OUTDIR/summary.md (the devices, the tests' last lines and every table) and
# OUTDIR/parts.tgz (all outputs: devices.txt, tests.log for the tests that exercise the device
# path, device_windows_bB.md for the step alone with device windows at the default batch 4096 and
# at 65536 -- the ceiling of end-to-end speed, per model x loss -- and sg_ns_bB.md/.json for
# skip-gram/NS one epoch end to end with evaluation at B = 4096, 16384, 65536); two files, since
# the device tool returns at most 8.  DW_ARGS adds arguments to
# device_windows.py (e.g. "--steps-per-call 4 --calls 2 --repeats 1" for a quick check on CPU).
set -uo pipefail
corpus=${1:-w2vjax/data/text8_head.txt.gz}
dest=${2:-benchmarks/results/accelerator}
out="$dest/parts"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
status=0
$py -c "import jax, platform; print('jax', jax.__version__, 'python', platform.python_version()); \
print(jax.devices()); print(jax.devices()[0].device_kind)" 2>&1 | tee "$out/devices.txt" || status=1
$py -m pytest -q -p no:cacheprovider tests/test_windows.py tests/test_step.py tests/test_train.py \
    tests/test_checkpoint.py 2>&1 | tee "$out/tests.log" | tail -3 || status=1
for b in 4096 65536; do
    $py benchmarks/device_windows.py --corpus "$corpus" --batch-size $b --feed-words 2000000 \
        ${DW_ARGS:-} --out "$out/device_windows_b$b" || status=1
done
for b in 4096 16384 65536; do
    $py benchmarks/quality.py --corpus "$corpus" --tools w2vjax --configs sg-ns --epochs 1 --batch-size $b \
        --out "$out/sg_ns_b$b" || status=1
done
{
    echo "# benchmarks/accelerator.sh $corpus ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null))"
    echo; echo '```'; cat "$out/devices.txt"; tail -n 5 "$out/tests.log"; echo '```'
    for f in "$out"/device_windows_b*.md "$out"/sg_ns_b*.md; do echo; echo "## $(basename "$f")"; echo; cat "$f"; done
} > "$dest/summary.md"
tar czf "$dest/parts.tgz" -C "$dest" parts && rm -rf "$out"
exit $status
