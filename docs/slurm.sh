#!/bin/bash
# Multi-node MDLM fine-tuning on HG38 with SLURM (Lightning reads the SLURM environment).
# Prepare the data once on a shared file system:  GENODIFF_DATA=/shared/genodiff genodiff data prepare hg38_basenji
#SBATCH --job-name=genodiff-hg38
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
set -euo pipefail
export GENODIFF_DATA=/shared/genodiff
srun genodiff finetune hg38 trainer=gpu trainer.devices=8 trainer.num_nodes=2 \
    output_dir=/shared/runs/hg38-mdlm-${SLURM_JOB_ID} resume=auto
