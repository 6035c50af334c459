#!/bin/sh
# Slurm node epilog for toolship: remove what is left of a job's containers.
#
# slurmd runs the Epilog (slurm.conf: Epilog=/path/to/slurm-epilog.sh) as root on
# every node of a job once the job has ended there. toolship's worker stops its
# containers itself when Slurm sends SIGTERM (scancel, time limit), but Slurm
# does not know podman's containers (conmon leaves the job's process tree): a
# worker killed before it is done (SIGKILL after KillWait on a busy node,
# `scancel -s KILL`, an OOM kill of the worker) would leave its container
# running. Every container a toolship worker starts on Slurm carries the label
# io.toolship.slurm-job=JOBID; this removes those of the job that just ended.
#
# Rootful podman (the job's user is root) is asked directly; for other users
# their rootless podman is asked through runuser. A failing epilog drains the
# node, so this never fails: it logs to syslog's "user" facility instead.
[ -n "$SLURM_JOB_ID" ] || exit 0
command -v podman >/dev/null 2>&1 || exit 0

filter="label=io.toolship.slurm-job=$SLURM_JOB_ID"
if [ "${SLURM_JOB_UID:-0}" = "0" ]; then
    ids=$(podman ps -aq --filter "$filter" 2>/dev/null)
    [ -z "$ids" ] || podman rm -f -t 0 $ids >/dev/null 2>&1
else
    ids=$(runuser -u "$SLURM_JOB_USER" -- podman ps -aq --filter "$filter" 2>/dev/null)
    [ -z "$ids" ] || runuser -u "$SLURM_JOB_USER" -- podman rm -f -t 0 $ids >/dev/null 2>&1
fi
if [ -n "$ids" ]; then
    logger -t toolship-epilog "job $SLURM_JOB_ID: removed containers its worker left:" $ids \
        2>/dev/null
fi
exit 0
