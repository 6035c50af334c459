#!/bin/sh
#SBATCH --job-name=toolship-1m80abc
#SBATCH --comment=toolship:1m80abc:1
#SBATCH --output=/shared/toolship/tasks/1m80abc/slurm-1.out
#SBATCH --open-mode=append
#SBATCH --cpus-per-task=1
# toolship task 1m80abc, attempt 1.
# The worker stages the inputs in, runs each executor (on every node through
# srun when --nodes > 1), stages the outputs out and reports to the server.
# Its per-task token is read from a file, never given on a command line.
export TOOLSHIP_WORKER_TOKEN_FILE=/shared/toolship/tasks/1m80abc/worker.token
exec /opt/toolship/bin/toolship worker --server http://head:8000 --task 1m80abc --attempt 1
