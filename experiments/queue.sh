#!/bin/sh
# The order the committed studies were run in on the 2-core machine (cheapest, most telling first;
# reordered once mid-way when skip-gram runs proved slower than planned); every line resumes:
# finished variants are skipped, an interrupted one continues from its checkpoint.
# Log: experiments/work/queue.log
#
# W2VJAX_SRC (optional): a directory holding a snapshot of the w2vjax package to train with, e.g.
#   mkdir -p /tmp/pinned && git archive HEAD w2vjax | tar -x -C /tmp/pinned && git rev-parse HEAD > /tmp/pinned/COMMIT
# so that edits to the working tree's w2vjax/ during a long study do not change its runs.
cd "$(dirname "$0")/.." || exit 1
if [ -n "$W2VJAX_SRC" ]; then
  run() { PYTHONPATH="$W2VJAX_SRC:$PWD" nice -n 5 python -P -m experiments.run "$@"; }
else
  run() { nice -n 5 python -m experiments.run "$@"; }
fi
if [ -z "$QUEUE_RESUME" ]; then
run objectives --variants 'cbow-ns5-sub,cbow-ns15-sub,cbow-hs-sub,cbow-ns5-nosub,cbow-ns15-nosub,cbow-hs-nosub,cbow-softmax10k-sub,cbow-ns5-10k-sub'
run objectives --variants 'sg-ns5-sub,sg-hs-sub,sg-ns15-sub'
run reference
run seeds --variants 'cbow-*'
fi
run knobs --variants 'dim-*,window-*,negative-*,sample-*,noise-*'
run objectives --variants 'sg-ns5-nosub,sg-hs-nosub'
run knobs --variants 'epochs-1,epochs-3,epochs-5'
run objectives --variants 'sg-ns15-nosub'
run seeds
run knobs --variants 'epochs-10'
