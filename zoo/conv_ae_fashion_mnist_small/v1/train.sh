#!/bin/bash
# Trains this preset with the flags that today's defaults need (the model card gives the command as it was run); run from any directory.
kerasae train conv_ae --dataset fashion_mnist --latent-dim 16 --arg filters=[32,64] --arg decoder=transpose --epochs 20 --batch-size 128 --learning-rate 2e-3 --lr-schedule cosine --seed 0 --out runs/conv_ae_fashion_mnist_small --verbose 2
