#!/bin/bash
# The command that trained this preset. It reads NAB's ec2_request_latency_system_failure.csv
# (github.com/numenta/NAB, MIT licence): set NAB_DATA to a copy of NAB's data/ folder
# (default: ../shared/data/nab/data, beside a kerasae checkout run from its root).
# --validation 0.51 holds out the series' last 51 % as a contiguous tail, so the model
# trains on steps 0-1975 (2014-03-07 03:41 to 2014-03-14 00:16), all before NAB's first
# labelled anomaly window (step 2014); the held-out tail is the card's evaluation part.
# The preset was published from runs/conv1d_ae_nab_ec2_request_latency/model.keras by
# kerasae.zoo.publish(model, "conv1d_ae_nab_ec2_request_latency", version=1, dataset=<the .csv>,
# evaluation={"train_steps": 1976}, labelled_windows=<NAB's windows of the file>, ...),
# which measured the card's numbers (kerasae.zoo.series.evaluate_series).
set -euo pipefail
NAB_DATA="${NAB_DATA:-../shared/data/nab/data}"
kerasae train conv1d_ae --dataset "$NAB_DATA/realKnownCause/ec2_request_latency_system_failure.csv" --window 48 --validation 0.51 --arg filters=[8,4] --epochs 30 --batch-size 64 --seed 0 --out runs/conv1d_ae_nab_ec2_request_latency --verbose 2
