#!/bin/bash
# The commands that trained and published this preset (run from any directory; 1 CPU thread).
set -e
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
python -m kerasae.benchmarks.colorphotos photos
kerasae colorize --train photos/train --out runs/colorize_photos --steps 2800 --chroma-gain 1
python -m kerasae.benchmarks.colorize photos --run runs/colorize_photos --publish
