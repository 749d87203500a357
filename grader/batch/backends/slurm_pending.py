"""What a pending Slurm task waits for, in words, and whether it can ever start
(`segrade grade --backend slurm` while it waits; docs/cluster.md).

squeue's reason (`%r`) says why a task has not started. Most reasons clear by themselves
(Priority, Resources, a QOS or association limit on jobs running at once, a maintenance
reservation); these are shown with how long each task has waited. Some never do:

- the request exceeds what the partition is configured to give (PartitionConfig,
  PartitionTimeLimit, PartitionNodeLimit), a constraint no node satisfies (BadConstraints),
  a per-job limit of the QOS or the account (...PerJob... limits), an invalid account/QOS;
- every node that could run the task is out of service until someone acts (drained, failed,
  set down by hand; grader.batch.backends.slurm_partition.Node.out_for_good): Slurm's reason
  is then ReqNodeNotAvail or "Nodes required for job are DOWN, DRAINED or reserved ...".
  A node that only stopped responding, or a maintenance reservation, may come back: waited for.

For these the command stops, cancels the tasks that cannot start, and says what to change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

# Reasons that never clear by themselves, and what to change.
NEVER = {
    "PartitionConfig": "the request exceeds what the partition is configured to give (CPUs, memory or GPUs per "
                       "node): lower --slurm-cpus/--slurm-mem/--slurm-gpus or choose another --slurm-partition",
    "PartitionTimeLimit": "the time limit exceeds the partition's MaxTime: lower --slurm-time or choose another "
                          "--slurm-partition",
    "PartitionNodeLimit": "the request needs more nodes than the partition allows: choose another --slurm-partition",
    "BadConstraints": "no node satisfies the constraint: change `constraint` in --slurm-config",
    "InvalidAccount": "the account is not valid here: change `account` in --slurm-config",
    "InvalidQOS": "the QOS is not valid here: change `qos` in --slurm-config",
    "AccountNotAllowed": "the account may not use this partition: change `account` or --slurm-partition",
    "QOSNotAllowed": "the QOS may not use this partition: change `qos` or --slurm-partition",
}
PER_JOB_LIMIT = re.compile(r"^(QOS|Assoc)Max\w*PerJob\w*$")  # one task over a per-job limit never fits it
NODES_OUT = re.compile(r"^ReqNodeNotAvail|^Nodes required for job are DOWN|^Nodes_required_for_job_are_DOWN", re.I)
# Reasons that clear by themselves, in words (others are shown as Slurm writes them).
WORDS = {
    "Priority": "other jobs have priority",
    "Resources": "waiting for free CPUs, memory or GPUs",
    "JobArrayTaskLimit": "at most --slurm-parallel tasks run at once",
    "Dependency": "waiting for another job",
    "BeginTime": "not before its begin time",
    "JobHeldUser": "held (scontrol release)",
    "JobHeldAdmin": "held by an administrator",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "Reservation": "waiting for a reservation",
    "ReqNodeNotAvail": "its nodes are unavailable",
    "None": "about to be scheduled",
}


@dataclass(frozen=True)
class Pending:
    """One task that has not started: the submission, Slurm's job id and reason, since when."""

    id: str
    job: str
    reason: str
    waited_s: float | None = None

    @property
    def short_reason(self) -> str:
        """The reason's name alone: `ReqNodeNotAvail, UnavailableNodes:n1` -> ReqNodeNotAvail."""
        reason = self.reason.strip() or "None"
        if NODES_OUT.match(reason):
            return "ReqNodeNotAvail"
        return re.split(r"[,(\s]", reason, maxsplit=1)[0]

    @property
    def words(self) -> str:
        name = self.short_reason
        if name in NEVER:
            return NEVER[name]
        if PER_JOB_LIMIT.match(name):
            return "over a per-job limit of the QOS or account"
        if re.match(r"^(QOS|Assoc)(Grp|Max)", name):
            return "a QOS or account limit on what runs at once"
        return WORDS.get(name, "")


def waited_since(submitted: str, now: datetime | None = None) -> float | None:
    """Seconds since squeue's submit time (`%V`, local time without a zone), None if unreadable."""
    try:
        then = datetime.fromisoformat(submitted.strip())
    except ValueError:
        return None
    now = now or (datetime.now(then.tzinfo) if then.tzinfo else datetime.now())
    return max(0.0, (now - then).total_seconds())


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def never_starts(pending: Pending, nodes=None) -> str | None:
    """Why this task can never start by itself, or None while it may. `nodes`: the
    partition's nodes (slurm_partition.Node), for the node-unavailable reasons."""
    name = pending.short_reason
    if name in NEVER or PER_JOB_LIMIT.match(name):
        return f"Slurm's reason {name}: {pending.words}"
    if name == "ReqNodeNotAvail" and nodes is not None:
        if nodes and all(n.out_for_good for n in nodes):
            out = "; ".join(f"{n.name} is {n.state}" + (f" ({n.reason})" if n.reason else "") for n in nodes[:5])
            return (f"every node that could run it is out of service until an administrator resumes it: {out}; "
                    "choose another --slurm-partition, or ask the admins and run again")
    return None


def describe(pending: list[Pending], limit: int = 4) -> str:
    """One line for the progress display: the pending tasks grouped by reason, with how long
    the longest has waited and, for a few, which submissions."""
    groups: dict[str, list[Pending]] = {}
    for p in pending:
        groups.setdefault(p.short_reason, []).append(p)
    parts = []
    for name, items in sorted(groups.items(), key=lambda g: -len(g[1])):
        longest = max((p.waited_s for p in items if p.waited_s is not None), default=None)
        who = ", ".join(p.id for p in items[:limit]) + (f" +{len(items) - limit}" if len(items) > limit else "")
        words = items[0].words
        parts.append(f"{len(items)} {name}{' (' + words + ')' if words else ''}: {who}, waiting "
                     f"{'up to ' if len(items) > 1 else ''}{duration(longest)}")
    return "pending: " + "; ".join(parts)
