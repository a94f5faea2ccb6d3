"""A rank that only reports where it runs (for the SLURM launch test, whose GPUs are the test
cluster's fake gres): its SLURM rank, CUDA_VISIBLE_DEVICES, and the train rule's outputs touched so
that the rule completes. Started by training.launch in place of the training worker."""

import json
import os
import sys
from pathlib import Path

job = json.loads(Path(sys.argv[1]).read_text())
rank = int(os.environ.get("SLURM_PROCID", os.environ.get("RANK", "0")))
print(
    f"rank {rank} of {os.environ.get('SLURM_NTASKS')} on {os.uname().nodename}: "
    f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')} "
    f"SLURM_STEP_GPUS={os.environ.get('SLURM_STEP_GPUS')} "
    f"SLURM_NTASKS_PER_GPU={os.environ.get('SLURM_NTASKS_PER_GPU')}",
    flush=True,
)
if rank == 0:
    for key in ("best_checkpoint", "history_file"):
        Path(job["files"][key]).write_text("launch test: no training\n")
