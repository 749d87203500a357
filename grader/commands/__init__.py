"""One module per `segrade` command: each adds its parser and runs it by calling the engine."""

import sys


def load_spec_of(args):
    """The assignment of `--spec` (the default one without it), with each key of the file that
    nothing reads said on standard error before anything runs (grader.spec: SPEC_KEYS)."""
    from grader.spec import load_spec

    assignment = load_spec(args.spec)
    for warning in assignment.warnings:
        print(f"segrade: warning: {warning}", file=sys.stderr)
    return assignment


def add_training_arguments(parser) -> None:
    """What every command that grades shares: the spec, the backbone weights, the device
    and the training profile."""
    parser.add_argument("--spec", metavar="TOML", help="assignment spec (default: the one shipped with segrade)")
    parser.add_argument("--vgg16-weights", metavar="FILE", help="ImageNet VGG16 weights (torchvision state dict)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    parser.add_argument("--profile", default="auto", help="training profile from the spec: smoke, full, or auto "
                        "(default: full on CUDA, smoke otherwise)")


def add_trust_argument(parser) -> None:
    """--trust-student-process (grade, check, rescore): grader.grading.score's hold, lifted."""
    parser.add_argument("--trust-student-process", action="store_true",
                        help="grade what was measured in the student's process (models that could not be captured) "
                        "as it came, instead of holding its identity checks for review, and release every other "
                        "hold (a program computing with many fixed values): after a person has looked "
                        "(docs/security.md)")


def add_sandbox_arguments(parser) -> None:
    """Where student code runs and what is graded (check, grade; docs/security.md)."""
    parser.add_argument("--isolation", choices=("auto", "bubblewrap", "process"), default="auto",
                        help="auto (default): bubblewrap when installed, else a plain process")
    parser.add_argument("--no-capture", action="store_true", help="measure and train every model in the worker, "
                        "beside the student's code, instead of its captured program in the verifier (docs/security.md)")
    add_trust_argument(parser)


def add_bands_argument(parser) -> None:
    """Where `check` and `grade` read the expected mIoU bands and the reference's figures."""
    parser.add_argument("--bands", metavar="DIR", help="folder of the bands files, as written by `segrade bands "
                        "--out DIR` (default: reference/bands, the default assignment's)")


def add_backend_arguments(parser, local: str) -> None:
    """--backend and the Slurm request (docs/cluster.md); `local` says what the local backend does."""
    cluster = parser.add_argument_group("where the jobs run (docs/cluster.md)")
    cluster.add_argument("--backend", choices=("local", "slurm"), default="local", help=f"local (default): {local}")
    cluster.add_argument("--slurm-config", metavar="TOML", help="a file with a [slurm] table: partition, gpus, cpus, "
                         "mem_gb, time_min, parallel, account, qos, constraint, setup, extra (options below win)")
    cluster.add_argument("--slurm-partition", metavar="NAME", help="partition (default: the cluster's default)")
    cluster.add_argument("--slurm-gpus", type=int, metavar="N", help="GPUs per task (default 0; 1 for the full profile)")
    cluster.add_argument("--slurm-cpus", type=int, metavar="N", help="CPU cores per task (default 4, or what the "
                         "partition's nodes have when fewer)")
    cluster.add_argument("--slurm-mem", type=float, metavar="GB", help="memory per task (default 16, or what the "
                         "partition's nodes have when less)")
    cluster.add_argument("--slurm-time", type=int, metavar="MIN", help="time limit per task, minutes (default 60, or "
                         "the partition's MaxTime when shorter)")
    cluster.add_argument("--slurm-parallel", type=int, metavar="N",
                         help="array tasks running at once (default: as many as Slurm allows)")


def backend_settings(args, parallel: int | None = None) -> dict:
    """make_backend's settings from add_backend_arguments' options (a value not given is left
    to the config file, then to the default)."""
    if args.backend != "slurm":
        return {}
    return {"config_file": args.slurm_config, "partition": args.slurm_partition, "gpus": args.slurm_gpus,
            "cpus": args.slurm_cpus, "mem_gb": args.slurm_mem, "time_min": args.slurm_time,
            "parallel": args.slurm_parallel or parallel}
