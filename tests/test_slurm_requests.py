"""Reading what a Slurm partition can give, fitting the request to it, and judging pending
reasons (grader.batch.backends.slurm_partition and slurm_pending), on recorded text.

The `vm`/`debug` records were printed by slurm-wlm 22.05 (the test cluster of
tests/slurm_cluster.py, a 2-CPU node of 8000 MB, drained by hand); the GPU partition's lines
are written after the same format, with the Gres and limits of a typical GPU cluster."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest

from grader.batch.backends.slurm import SlurmConfig, parse_squeue
from grader.batch.backends.slurm_partition import (
    RequestError, fit_request, gpu_count, parse_minutes, parse_nodes, parse_partitions, request_mb,
)
from grader.batch.backends.slurm_pending import Pending, describe, duration, never_starts, waited_since

PARTITION = ("PartitionName=debug AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES QoS=N/A "
             "DefaultTime=NONE DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED "
             "MaxTime=00:30:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=vm PriorityJobFactor=1 "
             "PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP "
             "TotalCPUs=2 TotalNodes=1 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED "
             "MaxMemPerNode=UNLIMITED TRES=cpu=2,mem=8000M,node=1,billing=2\n"
             "PartitionName=small AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=NO QoS=N/A "
             "DefaultTime=NONE MaxNodes=UNLIMITED MaxTime=00:20:00 MinNodes=0 LLN=NO MaxCPUsPerNode=1 Nodes=vm "
             "State=UP TotalCPUs=2 TotalNodes=1 DefMemPerNode=UNLIMITED MaxMemPerNode=3000 "
             "TRES=cpu=2,mem=8000M,node=1,billing=2\n")
NODE = ("NodeName=vm Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 CPUEfctv=2 CPUTot=2 CPULoad=2.23 "
        "AvailableFeatures=(null) ActiveFeatures=(null) Gres=(null) NodeAddr=127.0.0.1 NodeHostName=vm "
        "Version=22.05.8 OS=Linux 6.18.44-fc-v1252 #1 SMP PREEMPT_DYNAMIC @0  RealMemory=8000 AllocMem=0 "
        "FreeMem=12376 Sockets=2 Boards=1 State={state} ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A "
        "Partitions=debug,small  BootTime=2026-12-05T05:40:27 SlurmdStartTime=2026-12-05T06:17:01 "
        "LastBusyTime=2026-12-05T06:17:01 CfgTRES=cpu=2,mem=8000M,billing=2 AllocTRES= CapWatts=n/a CurrentWatts=0 "
        "AveWatts=0 ExtSensorsJoules=n/s ExtSensorsWatts=0 ExtSensorsTemp=n/s{reason}\n")
GPU_PARTITION = ("PartitionName=gpu AllowGroups=ALL Default=NO MaxNodes=UNLIMITED MaxTime=1-00:00:00 "
                 "MaxCPUsPerNode=UNLIMITED Nodes=g[01-02] State=UP MaxMemPerNode=UNLIMITED\n")
GPU_NODES = ("NodeName=g01 CPUAlloc=0 CPUEfctv=32 CPUTot=32 AvailableFeatures=a100,ib ActiveFeatures=a100,ib "
             "Gres=gpu:a100:4(S:0-1) RealMemory=512000 MemSpecLimit=2000 State=IDLE Partitions=gpu\n"
             "NodeName=g02 CPUAlloc=0 CPUEfctv=16 CPUTot=16 AvailableFeatures=v100 ActiveFeatures=v100 "
             "Gres=gpu:v100:2,mps:200 RealMemory=1024000 State=MIXED Partitions=gpu\n")


def cluster(state: str = "IDLE", reason: str = "") -> dict:
    return parse_partitions(PARTITION + GPU_PARTITION,
                            NODE.format(state=state, reason=f" Reason={reason}" if reason else "") + GPU_NODES)


def test_scontrol_records_are_read_with_values_that_hold_spaces():
    [vm] = parse_nodes(NODE.format(state="IDLE+DRAIN", reason=" Reason=disk replaced [root@2026-12-05T06:17:07]"))
    assert (vm.name, vm.cpus, vm.memory_mb, vm.gpus, vm.partitions) == ("vm", 2, 8000, 0, ("debug", "small"))
    assert vm.reason == "disk replaced [root@2026-12-05T06:17:07]" and vm.out_for_good
    parts = cluster()
    assert parts["debug"].default and parts["debug"].max_time_min == 30 and parts["small"].max_time_min == 20
    assert parts["small"].max_cpus_per_node == 1 and parts["small"].max_mem_per_node_mb == 3000
    g01, g02 = parts["gpu"].nodes
    assert (g01.gpus, g01.memory_mb, g01.features, g02.gpus) == (4, 510000, ("a100", "ib"), 2)
    assert parts["gpu"].max_time_min == 1440


@pytest.mark.parametrize("text, minutes", [("UNLIMITED", float("inf")), ("00:30:00", 30), ("30:00", 30), ("45", 45),
                                           ("1-00:00:00", 1440), ("2-12", 3600), ("1-01:30", 1530)])
def test_slurm_times(text, minutes):
    assert parse_minutes(text) == minutes


def test_gpu_counts_and_memory_as_submitit_asks_for_it():
    assert [gpu_count(g) for g in ("(null)", "gpu:2", "gpu:a100:4(S:0-1)", "gpu:a100:2,gpu:v100:1,mps:400")] == \
        [0, 2, 4, 3]
    assert request_mb(16) == 16384 and request_mb(2.9) == 2969


@pytest.mark.parametrize("state, out", [("IDLE", False), ("ALLOCATED+DRAIN", True), ("IDLE+DRAIN", True),
                                        ("DOWN+DRAIN", True), ("DOWN", True), ("DOWN+NOT_RESPONDING", False),
                                        ("IDLE+DRAIN+REBOOT_REQUESTED", False), ("MIXED+MAINTENANCE", False),
                                        ("FAIL", True)])
def test_which_node_states_are_out_until_someone_acts(state, out):
    [vm] = parse_nodes(NODE.format(state=state, reason=""))
    assert vm.out_for_good is out


def test_a_default_request_too_large_for_the_partition_is_fitted_and_said():
    fit = fit_request(SlurmConfig(partition="small"), cluster())   # 4 CPUs, 16 GB, 60 min: the defaults
    assert (fit.config.cpus, fit.config.mem_gb, fit.config.time_min) == (1, 2.9, 20)
    assert request_mb(fit.config.mem_gb) <= 3000
    [note] = fit.notes
    assert "does not fit partition small" in note and "--slurm-cpus 4 -> 1" in note and "--slurm-mem 16 -> 2.9" in note
    # the default partition when none is named; a request that fits is left alone
    fit = fit_request(SlurmConfig(), cluster())
    assert fit.partition.name == "debug" and (fit.config.cpus, fit.config.mem_gb, fit.config.time_min) == (2, 7.8, 30)
    fit = fit_request(SlurmConfig.load(cpus=1, mem_gb=2, time_min=10), cluster())
    assert (fit.config.cpus, fit.config.mem_gb, fit.config.time_min, fit.notes) == (1, 2, 10, [])


def test_a_chosen_request_that_can_never_run_is_refused_with_the_numbers_and_the_option():
    with pytest.raises(RequestError) as refused:
        fit_request(SlurmConfig.load(partition="small", mem_gb=64, time_min=90), cluster())
    message = str(refused.value)
    assert "nothing was submitted" in message
    assert "--slurm-mem 64" in message and "at most 2.9 GB" in message and "MaxMemPerNode 3000 MB" in message
    assert "--slurm-time 90" in message and "at most 20 min" in message
    with pytest.raises(RequestError, match=r"--slurm-cpus 64: partition gpu gives at most 32 CPUs"):
        fit_request(SlurmConfig.load(partition="gpu", cpus=64), cluster())
    with pytest.raises(RequestError, match=r"no such partition \(partitions: debug \(default\), small, gpu\)"):
        fit_request(SlurmConfig.load(partition="nosuch"), cluster())
    # each value fits some node, not one node all of them: the nodes are listed
    with pytest.raises(RequestError, match=r"no node of partition gpu has 32 CPUs, 600.0 GB together \(nodes: g01 "
                                           r"\(32 CPUs, 498.0 GB, 4 GPU\(s\)\); g02 \(16 CPUs, 1000.0 GB"):
        fit_request(SlurmConfig.load(partition="gpu", cpus=32, mem_gb=600), cluster())


def test_gpus_and_constraints():
    fit = fit_request(SlurmConfig.load(partition="gpu", gpus=2, constraint="v100"), cluster())
    assert fit.config.gpus == 2 and fit.config.cpus == 4 and fit.notes == []
    with pytest.raises(RequestError, match="--slurm-gpus 4: partition gpu has at most 2 GPU"):
        fit_request(SlurmConfig.load(partition="gpu", gpus=4, constraint="v100"), cluster())
    with pytest.raises(RequestError, match="constraint 'h100'.*features there: a100, ib, v100"):
        fit_request(SlurmConfig.load(partition="gpu", constraint="h100"), cluster())
    # the full profile's GPU (a default, never taken away) on a partition without GPUs
    with pytest.raises(RequestError, match="debug has no GPUs.*--slurm-gpus 0"):
        fit_request(SlurmConfig(gpus=1), cluster())


def test_a_partition_whose_nodes_are_all_drained_is_said_before_submitting():
    fit = fit_request(SlurmConfig.load(cpus=1, mem_gb=1), cluster("IDLE+DRAIN", "disk replaced [root@x]"))
    assert any("out of service" in n and "disk replaced" in n for n in fit.notes), fit.notes


SQUEUE = """\
1|PENDING||big|N/A|2026-12-05T06:17:02|debug|PartitionConfig
3|PENDING||long|N/A|2026-12-05T06:17:02|debug|PartitionTimeLimit
6_0|PENDING||waiter|0|2026-12-05T06:17:02|debug|Nodes required for job are DOWN, DRAINED or reserved for jobs in \
higher priority partitions
6_1|PENDING||waiter|1|2026-12-05T06:17:02|debug|Resources
5|RUNNING|vm|blocker|N/A|2026-12-05T06:17:02|debug|None
7|COMPLETED|vm|old|N/A|2026-12-05T06:10:00|debug|None
"""


def test_squeue_lines_give_state_partition_submit_time_and_reason():
    live = parse_squeue(SQUEUE)
    assert sorted(live) == ["1", "3", "5", "6_0", "6_1"]
    assert live["6_0"]["reason"].startswith("Nodes required for job are DOWN, DRAINED")
    assert (live["6_1"]["index"], live["6_1"]["partition"], live["5"]["node"]) == ("1", "debug", "vm")
    assert waited_since(live["1"]["submitted"], datetime(2026, 12, 5, 6, 19, 12)) == 130
    assert waited_since("N/A") is None and duration(130) == "2 min 10 s" and duration(7300) == "2 h 01 min"


def test_reasons_that_never_clear_and_those_that_do():
    live = parse_squeue(SQUEUE)
    pending = {j: Pending(j, j, s["reason"], 60) for j, s in live.items() if s["state"] == "PENDING"}
    drained = list(cluster("IDLE+DRAIN", "disk replaced")["debug"].nodes)
    assert "PartitionConfig" in never_starts(pending["1"]) and "--slurm-cpus" in never_starts(pending["1"])
    assert "--slurm-time" in never_starts(pending["3"])
    assert never_starts(pending["6_1"], drained) is None  # Resources: clears by itself
    assert pending["6_0"].short_reason == "ReqNodeNotAvail"
    why = never_starts(pending["6_0"], drained)
    assert "out of service" in why and "vm is IDLE+DRAIN (disk replaced)" in why
    assert never_starts(pending["6_0"], list(cluster("DOWN+NOT_RESPONDING")["debug"].nodes)) is None
    assert never_starts(pending["6_0"], list(cluster("IDLE")["debug"].nodes)) is None  # reserved: waits
    assert never_starts(Pending("a", "9", "QOSMaxWallDurationPerJobLimit")) is not None
    assert never_starts(Pending("a", "9", "QOSMaxJobsPerUserLimit")) is None
    assert never_starts(Pending("a", "9", "ReqNodeNotAvail, UnavailableNodes:vm"), drained) is not None


def test_the_waiting_line_groups_tasks_by_reason_with_their_waits():
    line = describe([Pending("ann", "1_0", "Resources", 75), Pending("bo", "1_1", "Resources", 30),
                     Pending("cy", "1_2", "Priority", 5)] + [Pending(f"s{i}", f"1_{i + 3}", "Resources", 1)
                                                            for i in range(4)])
    assert line.startswith("pending: 6 Resources (waiting for free CPUs, memory or GPUs): ann, bo, s0, s1 +2, "
                           "waiting up to 1 min 15 s; 1 Priority (other jobs have priority): cy, waiting 5 s"), line


def test_the_backend_asks_for_a_gpu_for_full_work_and_fits_the_rest(monkeypatch):
    import grader.batch.backends.slurm as slurm
    import grader.batch.backends.slurm_partition as partition
    from grader.batch.backends.slurm import SlurmBackend

    def GradeOptions(profile="auto", device="auto"):  # the two fields a backend reads (no torch import)
        return SimpleNamespace(profile=profile, device=device)

    monkeypatch.setattr(partition, "read_partitions", cluster)
    monkeypatch.setattr(slurm, "_need_sbatch", lambda: None)
    notes: list[str] = []
    backend = SlurmBackend(SlurmConfig.load(partition="gpu", constraint="a100"))
    backend.prepare(GradeOptions(profile="full"), notes.append)
    params = backend.config.executor_parameters("segrade-x")
    assert params["gpus_per_node"] == 1 and params["cpus_per_task"] == 4 and params["mem_gb"] == 16
    assert backend.device(GradeOptions()) == "cuda" and any("1 GPU per task" in n for n in notes)
    # --slurm-gpus 0 chosen: the full profile on CPUs, as asked
    backend = SlurmBackend(SlurmConfig.load(partition="gpu", gpus=0))
    backend.prepare(GradeOptions(profile="full"), notes.append)
    assert backend.config.gpus == 0 and backend.device(GradeOptions()) == "cpu"

    def unreachable():
        raise OSError("`scontrol show partition` failed: Unable to contact slurm controller")

    monkeypatch.setattr(partition, "read_partitions", unreachable)
    notes.clear()
    backend = SlurmBackend(SlurmConfig())
    backend.prepare(GradeOptions(profile=None), notes.append)
    assert backend.config.cpus == 4 and "submitting the request unchecked" in notes[0]


def test_tasks_that_can_never_start_are_cancelled_and_the_batch_stops(monkeypatch):
    import subprocess

    import grader.batch.backends.slurm as slurm
    from grader.batch.backends.slurm import SlurmBackend
    from grader.shared.errors import BatchError

    calls = []
    monkeypatch.setattr(slurm.subprocess, "run",
                        lambda args, **kw: calls.append(args) or subprocess.CompletedProcess(args, 0, "", ""))
    live = parse_squeue(SQUEUE)
    pending = [Pending("bo", "6_1", "Resources", 5), Pending("ann", "1", live["1"]["reason"], 5)]
    with pytest.raises(BatchError) as stopped:
        SlurmBackend(SlurmConfig())._stop_if_never_starting(pending, live, ["segrade-x"])
    message = str(stopped.value)
    assert "2 pending task(s) can never start (bo, ann): Slurm's reason PartitionConfig" in message
    assert "cancelled them (6_1, 1)" in message and "1 running task(s) go on" in message
    assert calls == [["scancel", "6_1", "1"]]
    SlurmBackend(SlurmConfig())._stop_if_never_starting(pending[:1], live, ["segrade-x"])  # Resources: waits
    assert len(calls) == 1
