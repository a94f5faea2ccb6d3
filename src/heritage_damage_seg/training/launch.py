"""Starting a data-parallel training: ``torchrun`` on one machine, ``srun`` tasks in a SLURM job.

The train rule's job runs this launcher, which writes what every rank needs into a job file and
starts ``training.gpus × training.nodes`` copies of :mod:`.worker`:

- in a SLURM job whose rule declared the ``mpi`` resource (the workflow does for several ranks):
  ``srun`` starts one task per rank across the allocation's nodes; each task learns its rank from
  SLURM, and rank 0's node is the rendezvous;
- elsewhere ``torchrun --standalone`` starts the ranks on this machine (one node only).

Rank 0's output (its progress log) comes back through the launcher into the rule's log; rank k
logs to ``<log>.rank<k>``. SIGTERM / SIGUSR1 reaching the launcher are passed on to the ranks,
which stop together after the same step; the launcher then exits with the signal's status so the
retry resumes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from heritage_damage_seg.training.settings import TrainSettings

log = logging.getLogger(__name__)

WORKER_MODULE = "heritage_damage_seg.training.worker"
# Another module to start as each rank: the launch test's worker reports its rank and GPU only (the
# launch is what it tests, on a cluster whose GPUs are not real).
WORKER_VARIABLE = "HDS_RANK_WORKER"
PORT_BASE = 29500  # rendezvous port of a SLURM job: PORT_BASE + job id modulo PORT_SPAN
PORT_SPAN = 1000


class LaunchError(RuntimeError):
    pass


def rank_log(log_file: str | os.PathLike[str], rank: int) -> Path:
    """Where rank ``rank`` (> 0) logs: beside the rule's log."""
    path = Path(log_file)
    return path.with_name(f"{path.name}.rank{rank}")


def write_job(
    path: Path, settings: TrainSettings, files: Mapping[str, str], threads: int, log_file: str
) -> Path:
    job = {
        "settings": asdict(settings),
        "files": {key: str(value) for key, value in files.items()},
        "threads": threads,
        "log": str(log_file),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(job, indent=1))
    return path


def in_slurm_job() -> bool:
    return bool(os.environ.get("SLURM_JOB_ID"))


def rank_command(
    settings: TrainSettings, job_file: Path, threads: int, srun: str | None
) -> list[str]:
    """The command that starts every rank: srun tasks in a SLURM job, else torchrun. Each srun task
    gets one of the job's GPUs (``--gpus-per-task=1``: the job asks for ``--gres=gpu:G`` per node,
    never ``--ntasks-per-gpu``, which srun refuses beside it)."""
    worker_module = os.environ.get(WORKER_VARIABLE, WORKER_MODULE)
    worker = [sys.executable, "-m", worker_module, str(job_file)]
    if srun and in_slurm_job():
        command = [
            srun,
            f"--ntasks={settings.ranks}",
            f"--nodes={settings.nodes}",
            f"--ntasks-per-node={settings.gpus}",
            f"--cpus-per-task={threads}",
            "--kill-on-bad-exit=1",
        ]
        if settings.device != "cpu":
            command.append("--gpus-per-task=1")
        return command + worker
    if settings.nodes > 1:
        raise LaunchError(
            f"training.nodes is {settings.nodes}: several nodes need a SLURM job (snakemake "
            "--executor slurm, or --profile profiles/slurm); on one machine set training.nodes: 1"
        )
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={settings.gpus}",
        "-m",
        worker_module,
        str(job_file),
    ]


def rank_environment(threads: int, srun: bool) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if srun:
        # The batch script runs on the allocation's first node: rank 0's host.
        job = int(os.environ["SLURM_JOB_ID"])
        env |= {
            "HDS_SRUN_RANKS": "1",
            "MASTER_ADDR": socket.gethostname(),
            "MASTER_PORT": str(PORT_BASE + job % PORT_SPAN),
        }
    return env


@contextlib.contextmanager
def forwarded_signals(child: subprocess.Popen) -> Iterator[list[int]]:
    """SIGTERM / SIGUSR1 to the launcher go to the ranks' launcher (torchrun forwards SIGTERM to
    its workers; srun forwards both); the signals received are listed."""
    received: list[int] = []
    srun = Path(str(child.args[0])).name == "srun"  # type: ignore[index]

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        # torchrun stops its workers on SIGTERM only (SIGUSR1 would end torchrun itself).
        passed_on = signum if srun else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(passed_on)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def launch_ranks(
    settings: TrainSettings,
    files: Mapping[str, str],
    *,
    threads: int,
    log_file: str,
    srun: str | None = None,
) -> None:
    """Runs the ranks to the end; their output goes to this process's stdout (the rule's log)."""
    job_file = write_job(
        Path(files["last_checkpoint"]).with_name(".ranks_job.json"),
        settings,
        files,
        threads,
        log_file,
    )
    command = rank_command(settings, job_file, threads, srun)
    log.info("starting %d ranks: %s", settings.ranks, " ".join(command))
    # A session of its own: a signal to the job's process group reaches the ranks once, through
    # the forwarding below, not twice.
    child = subprocess.Popen(
        command,
        env=rank_environment(threads, command[0] == srun),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
    )
    with forwarded_signals(child) as received:
        assert child.stdout is not None
        for line in child.stdout:
            sys.stdout.write(line)
        status = child.wait()
    job_file.unlink(missing_ok=True)
    if status == 0:
        return
    if received:
        log.warning(
            "%s passed on to the ranks; exiting with status %d so that a rerun resumes",
            signal.Signals(received[0]).name,
            128 + received[0],
        )
        raise SystemExit(128 + received[0])
    raise LaunchError(
        f"the training ranks stopped ({command[0]} exited with status {status}). A rank that "
        "received SIGTERM/SIGUSR1 saved the position first (its line is above) and a rerun "
        f"resumes from it; otherwise rank 0's error is above in {log_file} and the other ranks' "
        f"in {rank_log(log_file, 1)} …"
    )


def job_record(job_file: str | os.PathLike[str]) -> dict[str, Any]:
    return json.loads(Path(job_file).read_text())
