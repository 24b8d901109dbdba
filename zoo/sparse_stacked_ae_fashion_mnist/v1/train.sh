#!/bin/bash
# The command that trained this preset (run from any directory).
kerasae train sparse_stacked_ae --dataset fashion_mnist --latent-dim 64 --arg hidden_units=[512,256] --arg sparsity_weight=1e-4 --arg sparsity_target=0.05 --pretrain-epochs 3 --epochs 20 --batch-size 128 --learning-rate 1e-3 --lr-schedule cosine --seed 0 --out runs/sparse_stacked_ae_fashion_mnist --verbose 2
