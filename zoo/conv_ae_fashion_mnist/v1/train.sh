#!/bin/bash
# Trains this preset with the flags that today's defaults need (the model card gives the command as it was run); run from any directory.
kerasae train conv_ae --dataset fashion_mnist --latent-dim 64 --arg filters=[32,64] --arg decoder=transpose --arg convs_per_stage=2 --epochs 30 --batch-size 128 --learning-rate 2e-3 --lr-schedule cosine --seed 0 --out runs/conv_ae_fashion_mnist --verbose 2
