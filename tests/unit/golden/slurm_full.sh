#!/bin/sh
#SBATCH --job-name=toolship-1m80abc
#SBATCH --comment=toolship:1m80abc:1
#SBATCH --output=/shared/toolship/tasks/1m80abc/slurm-1.out
#SBATCH --open-mode=append
#SBATCH --nodes=3
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=4
#SBATCH --mem=7680M
#SBATCH --time=0-02:05:00
#SBATCH --gres=gpu:2
#SBATCH --partition=gpu
#SBATCH --account=lab42
#SBATCH --qos=long
#SBATCH --constraint=a100&ib
# toolship task 1m80abc, attempt 1.
# The worker stages the inputs in, runs each executor (on every node through
# srun when --nodes > 1), stages the outputs out and reports to the server.
# Its per-task token is read from a file, never given on a command line.
module load podman
export TOOLSHIP_WORKER_TOKEN_FILE=/shared/toolship/tasks/1m80abc/worker.token
exec /opt/toolship/bin/toolship worker --server http://head:8000 --task 1m80abc --attempt 1
