#!/usr/bin/env bash
# Train small runs on the embedded corpus and print sha256 of vectors.bin per configuration.
# Usage: bitwise.sh OUTDIR [train options added to every run, e.g. --init-scale 0.5]
set -euo pipefail
out=${1:?outdir}; shift
extra=("$@")
mkdir -p "$out"
run() { name=$1; shift
  rm -rf "$out/$name"
  w2vjax train --workdir "$out/$name" --dim 20 --epochs 1 --no-eval --quiet "$@" "${extra[@]}" >/dev/null 2>"$out/$name.log" || { echo "$name FAILED"; tail -3 "$out/$name.log"; return; }
  echo "$name $(sha256sum "$out/$name/vectors.bin" | cut -c1-16)"
}
run sg-ns-k1 --model skipgram --loss ns --threads 1
run sg-ns-k1-b256 --model skipgram --loss ns --threads 1 --batch-size 256
run cbow-ns-k1 --model cbow --loss ns --threads 1
run cbow-ns-k1-b256 --model cbow --loss ns --threads 1 --batch-size 256
run sg-hs-k1 --model skipgram --loss hs --threads 1
run sg-hs-k1-b256 --model skipgram --loss hs --threads 1 --batch-size 256
run cbow-hs-k1 --model cbow --loss hs --threads 1
run sg-ns-xla --model skipgram --loss ns --no-cpu-kernel
run cbow-hs-xla --model cbow --loss hs --no-cpu-kernel
run sg-sm-xla --model skipgram --loss softmax --max-vocab 2000
