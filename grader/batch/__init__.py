"""A folder of submissions: the batch (grade), its jobs, the backends they run on (local,
Slurm), rescoring, the bands a batch measures and why a grade changed."""
