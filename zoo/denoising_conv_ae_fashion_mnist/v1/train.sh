#!/bin/bash
# Trains this preset with the flags that today's defaults need (the model card gives the commands as they were run); run from any directory. The second resumes the first run's checkpoint with more epochs.
set -e
kerasae train denoising_conv_ae --dataset fashion_mnist --arg filters=[32,64] --arg decoder=transpose --arg convs_per_stage=2 --arg corruption_amount=0.2 --epochs 20 --batch-size 128 --learning-rate 2e-3 --lr-schedule cosine --seed 0 --out runs/denoising_conv_ae_fashion_mnist --verbose 2
kerasae train denoising_conv_ae --dataset fashion_mnist --arg filters=[32,64] --arg decoder=transpose --arg convs_per_stage=2 --arg corruption_amount=0.2 --epochs 30 --batch-size 128 --learning-rate 2e-3 --lr-schedule cosine --seed 0 --out runs/denoising_conv_ae_fashion_mnist --verbose 2
