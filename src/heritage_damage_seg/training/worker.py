"""One rank of a data-parallel training, as started by :mod:`.launch` (torchrun or srun):
``python -m heritage_damage_seg.training.worker <job file>``.

Rank 0 logs to its standard output, which the launcher writes into the rule's log; rank k logs
to ``<log>.rank<k>``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch

from heritage_damage_seg.logs import LOG_DATE_FORMAT, LOG_FORMAT, logged
from heritage_damage_seg.training import distributed
from heritage_damage_seg.training.distributed import Ranks
from heritage_damage_seg.training.launch import job_record, rank_log
from heritage_damage_seg.training.settings import TrainSettings
from heritage_damage_seg.training.train import train


def run_rank(job_file: str, ranks: Ranks) -> None:
    job = job_record(job_file)
    torch.set_num_threads(job["threads"])
    try:
        train(TrainSettings.from_record(job["settings"]), **job["files"], ranks=ranks)
    finally:
        distributed.stop()


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(f"usage: python -m {__spec__.name if __spec__ else 'worker'} JOB_FILE")
    ranks = Ranks.from_environment()
    if ranks.rank == 0:
        logging.basicConfig(
            stream=sys.stdout, level=logging.INFO, format=LOG_FORMAT, datefmt=LOG_DATE_FORMAT
        )
        logging.captureWarnings(True)
        run_rank(argv[1], ranks)
        return
    log_file = rank_log(job_record(argv[1])["log"], ranks.rank)
    with logged(Path(log_file)):
        run_rank(argv[1], ranks)


if __name__ == "__main__":
    main(sys.argv)
