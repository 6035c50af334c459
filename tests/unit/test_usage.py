from __future__ import annotations

from toolship.runtime.usage import in_slurm_cgroup


def test_a_worker_in_a_cgroup_slurm_made_is_recognised_v1_and_v2() -> None:
    """There a container moved to toolship's own cgroup would leave the job's limits."""
    v1 = "9:memory:/slurm/uid_0/job_7/step_batch\n8:pids:/slurm/uid_0/job_7/step_batch\n"
    v2 = "0::/system.slice/slurmstepd.scope/job_7/step_batch/user/task_0\n"
    assert in_slurm_cgroup(v1) and in_slurm_cgroup(v2)
    # proctrack/linuxproc, task/none (this project's cluster): the daemon's own cgroup.
    assert not in_slurm_cgroup("9:memory:/\n1:name=systemd:/system.slice/ssh.service\n")
    assert not in_slurm_cgroup("0::/user.slice/user-0.slice/session-1.scope\n")
