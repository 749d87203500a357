"""What a Slurm partition can give one task, read before anything is submitted, and the
request fitted to it (`segrade grade --backend slurm`, docs/cluster.md).

Slurm accepts an array whose tasks can never start (4 CPUs on a partition of 2-CPU nodes:
the tasks pend for ever with reason PartitionConfig), so the request is checked against
`scontrol show partition` and `scontrol show node` first:

- a value the user chose (command line or --slurm-config) that no node of the partition can
  give is refused, naming the number, what the partition offers and the option to change;
- a default that does not fit is lowered to what the partition offers, and said so;
- a request that fits is submitted unchanged.

What is read: CPUs (CPUEfctv, else CPUTot), memory (RealMemory less MemSpecLimit) and GPUs
(Gres) of each node of the partition, the partition's MaxTime, MaxCPUsPerNode and
MaxMemPerNode, its state, and the nodes' features for a simple --constraint. Limits of
accounts and QOS (sacctmgr, only with accounting) are not read: a task over them shows
Slurm's reason while it waits (grader.batch.backends.slurm_pending).
"""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass, field, replace
from typing import Any

from grader.shared.errors import BatchError

UNLIMITED = math.inf


class RequestError(BatchError):
    """A request the user chose that the partition can never run (exit 2, nothing submitted)."""


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    memory_mb: int
    gpus: int = 0
    state: str = ""                    # e.g. IDLE, ALLOCATED+DRAIN, DOWN+NOT_RESPONDING
    reason: str = ""                   # why an admin (or Slurm) took it out
    partitions: tuple[str, ...] = ()
    features: tuple[str, ...] = ()

    @property
    def flags(self) -> set[str]:
        return set(self.state.upper().replace("*", "").split("+"))

    @property
    def out_for_good(self) -> bool:
        """Out of service until someone acts: drained (not for a reboot Slurm does itself),
        failed, or set DOWN by hand. A node that merely stopped responding may come back."""
        flags = self.flags
        if flags & {"REBOOT_REQUESTED", "REBOOT_ISSUED", "POWERING_UP", "POWER_UP", "MAINTENANCE", "MAINT"}:
            return False
        if flags & {"DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "FUTURE", "INVAL", "INVALID"}:
            return True
        return "DOWN" in flags and "NOT_RESPONDING" not in flags and "NO_RESPOND" not in flags

    def describe(self) -> str:
        gpus = f", {self.gpus} GPU(s)" if self.gpus else ""
        return f"{self.name} ({self.cpus} CPUs, {self.memory_mb / 1024:.1f} GB{gpus})"


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool = False
    max_time_min: float = UNLIMITED
    max_cpus_per_node: float = UNLIMITED
    max_mem_per_node_mb: float = UNLIMITED
    state: str = "UP"
    nodes: tuple[Node, ...] = ()

    def cpus_on(self, node: Node) -> int:
        return int(min(node.cpus, self.max_cpus_per_node))

    def memory_on(self, node: Node) -> int:
        return int(min(node.memory_mb, self.max_mem_per_node_mb))


@dataclass
class Fit:
    config: Any                        # the SlurmConfig to submit
    partition: Partition | None = None
    notes: list[str] = field(default_factory=list)


# -- reading scontrol's one-line records
_KEY = re.compile(r"\s+(?=[A-Za-z][\w:/.]*=)")


def parse_records(text: str) -> list[dict[str, str]]:
    """`scontrol -o show ...`: one record a line, KEY=VALUE separated by spaces (a value may
    hold spaces itself, e.g. `OS=Linux 6.1 #1 SMP` or `Reason=disk replaced [root@...]`)."""
    records = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        record = {}
        for part in _KEY.split(line):
            key, _, value = part.partition("=")
            record[key] = value.strip()
        records.append(record)
    return records


def parse_minutes(value: str) -> float:
    """A Slurm time (MaxTime): UNLIMITED, minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS."""
    value = value.strip()
    if not value or value.upper() in ("UNLIMITED", "INFINITE", "NONE", "N/A"):
        return UNLIMITED
    days = 0
    if "-" in value:
        d, value = value.split("-", 1)
        days = int(d)
        parts = [int(p) for p in value.split(":")] + [0, 0]
        hours, minutes, seconds = parts[:3]
    else:
        parts = [int(p) for p in value.split(":")]
        hours, minutes, seconds = {1: (0, parts[0], 0), 2: (0, *parts), 3: tuple(parts)}[len(parts)]
    return days * 1440 + hours * 60 + minutes + seconds / 60


def _number(value: str | None, default: float = UNLIMITED) -> float:
    if value is None or not re.fullmatch(r"\d+(\.\d+)?", value.strip()):
        return default
    return float(value)


def gpu_count(gres: str) -> int:
    """GPUs in a node's Gres: `gpu:4`, `gpu:a100:4(S:0-1)`, `gpu:a100:2,gpu:v100:1,mps:400`."""
    return sum(int(n) for n in re.findall(r"(?:^|,)gpu(?::[^:,()]+)?:(\d+)", gres or ""))


def parse_nodes(text: str) -> list[Node]:
    nodes = []
    for r in parse_records(text):
        if "NodeName" not in r:
            continue
        cpus = int(_number(r.get("CPUEfctv"), 0) or _number(r.get("CPUTot"), 0))
        memory = int(_number(r.get("RealMemory"), 0) - _number(r.get("MemSpecLimit"), 0))
        features = r.get("AvailableFeatures", "")
        nodes.append(Node(r["NodeName"], cpus, memory, gpu_count(r.get("Gres", "")), r.get("State", ""),
                          r.get("Reason", ""), tuple(p for p in r.get("Partitions", "").split(",") if p),
                          tuple(f for f in features.split(",") if f and f != "(null)")))
    return nodes


def parse_partitions(partition_text: str, node_text: str) -> dict[str, Partition]:
    nodes = parse_nodes(node_text)
    found = {}
    for r in parse_records(partition_text):
        name = r.get("PartitionName")
        if not name:
            continue
        found[name] = Partition(
            name, default=r.get("Default") == "YES", max_time_min=parse_minutes(r.get("MaxTime", "UNLIMITED")),
            max_cpus_per_node=_number(r.get("MaxCPUsPerNode")), max_mem_per_node_mb=_number(r.get("MaxMemPerNode")),
            state=r.get("State", "UP"), nodes=tuple(n for n in nodes if name in n.partitions))
    return found


def read_partitions(timeout: float = 60) -> dict[str, Partition]:
    """The cluster's partitions, as its controller describes them now. Raises OSError when
    scontrol cannot answer (not installed, controller unreachable)."""
    texts = []
    for what in ("partition", "node"):
        try:
            probe = subprocess.run(["scontrol", "-o", "show", what], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise OSError(f"`scontrol show {what}` did not answer in {timeout:.0f} s") from None
        if probe.returncode != 0:
            raise OSError(f"`scontrol show {what}` failed: {(probe.stderr or probe.stdout).strip()[-300:]}")
        texts.append(probe.stdout)
    return parse_partitions(*texts)


# -- fitting a request
def request_mb(mem_gb: float) -> int:
    """The memory sbatch is asked for, in MB, as submitit writes it (`16GB`, or `2969MB`)."""
    return int(mem_gb) * 1024 if mem_gb == int(mem_gb) else int(mem_gb * 1024)


def _has_features(node: Node, constraint: str | None) -> bool | None:
    """Whether a node satisfies a simple --constraint (`a100`, `a100|v100`, `a100&ib`);
    None when the expression is beyond these (counts, brackets): Slurm judges it."""
    if not constraint:
        return True
    if re.search(r"[\[\]*()]", constraint):
        return None
    return any(all(f in node.features for f in term.split("&")) for term in constraint.split("|"))


def _gb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB"


def fit_request(config, partitions: dict[str, Partition]):
    """The request (a SlurmConfig) checked against its partition: a Fit with the config to
    submit and notes on what was lowered; RequestError for a chosen value that cannot run.
    `config.chosen` names the settings the user set (the others are defaults)."""
    if config.partition:
        partition = partitions.get(config.partition)
        if partition is None:
            known = ", ".join(f"{p.name}{' (default)' if p.default else ''}" for p in partitions.values()) or "none"
            raise RequestError(f"--slurm-partition {config.partition}: this cluster has no such partition "
                               f"(partitions: {known}); choose one of them with --slurm-partition")
    else:
        defaults = [p for p in partitions.values() if p.default]
        if not defaults:
            known = ", ".join(partitions) or "none"
            raise RequestError(f"this cluster has no default partition: choose one with --slurm-partition "
                               f"(partitions: {known})")
        partition = defaults[0]
    name = f"partition {partition.name}"
    notes = []
    if partition.state.upper() != "UP":
        notes.append(f"{name} is {partition.state}: its tasks wait until an administrator brings it up")
    chosen = set(getattr(config, "chosen", ()))
    time_min = config.time_min
    problems = []
    if time_min > partition.max_time_min:
        if "time_min" in chosen:
            problems.append(f"--slurm-time {config.time_min}: {name} allows at most {partition.max_time_min:g} min "
                            f"per task (MaxTime); ask for at most {partition.max_time_min:g} with --slurm-time")
        time_min = int(partition.max_time_min)
    nodes = [n for n in partition.nodes if _has_features(n, config.constraint) is not False]
    if not nodes:
        if partition.nodes and config.constraint:
            features = sorted({f for n in partition.nodes for f in n.features})
            raise RequestError(_refused(problems + [
                f"constraint {config.constraint!r}: no node of {name} has these features (features there: "
                f"{', '.join(features) or 'none'}); change `constraint` in --slurm-config or the partition"]))
        if problems:
            raise RequestError(_refused(problems))
        notes.append(f"{name} lists no nodes: the request was not checked")
        return Fit(replace(config, time_min=time_min), partition, notes)

    wanted = {"cpus": config.cpus, "mem_mb": request_mb(config.mem_gb), "gpus": config.gpus}
    capacity = {n.name: {"cpus": partition.cpus_on(n), "mem_mb": partition.memory_on(n), "gpus": n.gpus}
                for n in nodes}
    key_of = {"cpus": "cpus", "mem_mb": "mem_gb", "gpus": "gpus"}
    fixed = {k for k in wanted if key_of[k] in chosen or (k == "gpus" and wanted[k] > 0)}  # GPUs are never taken away

    def fitted(node: Node) -> dict[str, int] | None:
        cap = capacity[node.name]
        if any(wanted[k] > cap[k] for k in fixed):
            return None
        return {k: wanted[k] if k in fixed else min(wanted[k], cap[k]) for k in wanted}

    options = [(node, f) for node in nodes if (f := fitted(node)) is not None]
    if not options:
        problems += _problems(config, partition, nodes, wanted, capacity, fixed, chosen)
    if problems:
        raise RequestError(_refused(problems))
    # The node that keeps the most of the request (all of it, when one can).
    node, got = max(options, key=lambda o: (o[1] == wanted, o[1]["gpus"], o[1]["cpus"], o[1]["mem_mb"]))
    changes = {}
    if got["cpus"] != wanted["cpus"]:
        changes["cpus"] = got["cpus"]
    if got["mem_mb"] != wanted["mem_mb"]:
        changes["mem_gb"] = math.floor(got["mem_mb"] / 1024 * 10) / 10  # whole tenths of a GB
    if time_min != config.time_min:
        changes["time_min"] = time_min
    if changes:
        flag = {"cpus": ("--slurm-cpus", "CPUs"), "mem_gb": ("--slurm-mem", "GB"), "time_min": ("--slurm-time", "min")}
        said = ", ".join(f"{flag[k][0]} {getattr(config, k):g} -> {v:g} {flag[k][1]}" for k, v in changes.items())
        notes.append(f"the default request does not fit {name} (largest node {node.describe()}, MaxTime "
                     f"{_limit(partition.max_time_min, 'min')}, MaxCPUsPerNode {_limit(partition.max_cpus_per_node)}, "
                     f"MaxMemPerNode {_limit(partition.max_mem_per_node_mb, 'MB')}): asking for {said} per task; "
                     "set these options to choose otherwise")
    out_nodes = [n for n in nodes if n.out_for_good]
    if len(out_nodes) == len(nodes):
        notes.append(f"every node of {name} able to run the tasks is out of service ("
                     + "; ".join(f"{n.name} {n.state}{': ' + n.reason if n.reason else ''}" for n in out_nodes[:5])
                     + "): the tasks cannot start until an administrator resumes one")
    return Fit(replace(config, **changes), partition, notes)


def _limit(value: float, unit: str = "") -> str:
    return "UNLIMITED" if value == UNLIMITED else f"{value:g}{' ' + unit if unit else ''}"


def _refused(problems: list[str]) -> str:
    return ("the Slurm request can never run, nothing was submitted: " + "; ".join(problems)
            + " (or choose another partition with --slurm-partition)")


def _problems(config, partition: Partition, nodes: list[Node], wanted: dict[str, int],
              capacity: dict[str, dict[str, int]], fixed: set[str], chosen: set[str]) -> list[str]:
    name = f"partition {partition.name}"
    most = {k: max(c[k] for c in capacity.values()) for k in wanted}
    problems = []
    if wanted["cpus"] > most["cpus"] and "cpus" in fixed:
        problems.append(f"--slurm-cpus {config.cpus}: {name} gives at most {most['cpus']} CPUs per task "
                        f"(largest node {max(n.cpus for n in nodes)} CPUs, MaxCPUsPerNode "
                        f"{_limit(partition.max_cpus_per_node)}); ask for at most {most['cpus']} with --slurm-cpus")
    if wanted["mem_mb"] > most["mem_mb"] and "mem_mb" in fixed:
        problems.append(f"--slurm-mem {config.mem_gb:g}: {name} gives at most {_gb(most['mem_mb'])} per task "
                        f"({most['mem_mb']} MB: largest node {max(n.memory_mb for n in nodes)} MB, MaxMemPerNode "
                        f"{_limit(partition.max_mem_per_node_mb, 'MB')}); ask for at most "
                        f"{math.floor(most['mem_mb'] / 1024 * 10) / 10:g} with --slurm-mem")
    if wanted["gpus"] > most["gpus"]:
        option = "--slurm-gpus" if "gpus" in chosen else "a GPU (the full profile trains on GPUs)"
        where = f"at most {most['gpus']} GPU(s) per task" if most["gpus"] else "no GPUs"
        problems.append(f"{option} {config.gpus if 'gpus' in chosen else ''}".rstrip()
                        + f": {name} has {where}; choose a GPU partition with --slurm-partition"
                        + ("" if "gpus" in chosen else ", or pass --slurm-gpus 0 to train on its CPUs (slow)"))
    if not problems:
        offered = "; ".join(n.describe() for n in nodes[:6]) + (" ..." if len(nodes) > 6 else "")
        asked = f"{wanted['cpus']} CPUs, {_gb(wanted['mem_mb'])}" + (f", {wanted['gpus']} GPU(s)" if wanted["gpus"] else "")
        problems.append(f"no node of {name} has {asked} together (nodes: {offered}); lower --slurm-cpus, "
                        "--slurm-mem or --slurm-gpus, or choose another partition")
    return problems
