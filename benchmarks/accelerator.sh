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
# Writes to OUTDIR, each as soon as its stage ends (so a run stopped at the device tool's time
# limit still returns what it finished): devices.txt; tests.log (the tests that exercise the
# device path; SKIP_TESTS=1 skips them); device_windows_bB.md (the step alone with device windows
# at the default batch 4096 and at 65536: the ceiling of end-to-end speed, per model x loss);
# sg_ns_bB.md (skip-gram/NS, one epoch end to end with evaluation, B = 4096, 16384, 65536); and
# at the end parts.tgz (the same plus the JSON records): 8 files, what the device tool returns.  DW_ARGS adds arguments to
# device_windows.py (e.g. "--steps-per-call 4 --calls 2 --repeats 1" for a quick check on CPU).
set -uo pipefail
corpus=${1:-w2vjax/data/text8_head.txt.gz}
dest=${2:-benchmarks/results/accelerator}
out=$(mktemp -d)/parts
mkdir -p "$out" "$dest"
keep() { cp "$@" "$dest/"; }  # a finished stage's results, into OUTDIR at once
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
status=0
$py -c "import jax, platform; print('jax', jax.__version__, 'python', platform.python_version()); \
print(jax.devices()); print(jax.devices()[0].device_kind); import subprocess; \
print('commit', subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout)" \
    2>&1 | tee "$out/devices.txt" || status=1
keep "$out/devices.txt"
if [ -z "${SKIP_TESTS:-}" ]; then
    $py -m pytest -q -p no:cacheprovider tests/test_windows.py tests/test_step.py tests/test_train.py \
        tests/test_checkpoint.py > "$out/tests.log" 2>&1 || status=1
    tail -n 3 "$out/tests.log"; keep "$out/tests.log"
fi
for b in 4096 65536; do
    $py benchmarks/device_windows.py --corpus "$corpus" --batch-size $b --feed-words 2000000 \
        ${DW_ARGS:-} --out "$out/device_windows_b$b" || status=1
    keep "$out/device_windows_b$b.md"
done
for b in 4096 16384 65536; do
    $py benchmarks/quality.py --corpus "$corpus" --tools w2vjax --configs sg-ns --epochs 1 --batch-size $b \
        --out "$out/sg_ns_b$b" || status=1
    keep "$out/sg_ns_b$b.md"
done
tar czf "$dest/parts.tgz" -C "$(dirname "$out")" parts && rm -rf "$(dirname "$out")"
exit $status
