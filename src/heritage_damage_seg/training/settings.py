"""What one training run is told: the settings of one encoder and one seed, read from the
validated config in one place (the workflow passes them to the training job as they are).

No torch here: the workflow imports this module every time it is parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from heritage_damage_seg.seeds import training_seeds

# Settings that change how fast a run goes, not what it computes: a resume may change them.
# The number of ranks (gpus × nodes) is one of them: a run resumes from an epoch's end with any
# number, and from inside an epoch only with the number that started it (checked on resume).
RESUME_NEUTRAL_SETTINGS = frozenset(
    {"device", "eval_batch_size", "compile", "checkpoint_minutes", "gpus", "nodes"}
)


@dataclass(frozen=True)
class TrainSettings:
    encoder: str
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float = 0.01
    pct_start: float = 0.3
    loss: str = "dice"
    dice_smooth: float = 1.0
    mixed_precision: bool = True
    channels_last: bool = True
    # Augmentation's fields; {} = flips only
    augmentation: dict[str, Any] = field(default_factory=dict)
    seed: int = 42
    encoder_weights: str | None = None
    eval_batch_size: int = 32
    device: str = "auto"
    # torch.compile the training forward (GPU: faster steps after a compile of minutes)
    compile: bool = False
    # validate (and so choose the best epoch) every k epochs; the last epoch always
    validate_every: int = 1
    # 0: write model_last.pt every epoch; > 0: at most this often (a signal and the end always save)
    checkpoint_minutes: float = 0.0
    # Data parallelism: ranks per node (GPUs, or processes on the CPU) and nodes; the batch size
    # stays the global batch, each rank taking batch / (gpus × nodes) of it.
    gpus: int = 1
    nodes: int = 1
    # The sample order's shards; 0: one per rank. Set only to make one process follow the order of
    # a data-parallel run (the tests' reference).
    sample_shards: int = 0
    # Fine-tuning: a model_best.pt whose weights the model starts from (instead of the encoder's
    # ImageNet or random ones); the decoder and head come with it. None: a training from scratch.
    init_checkpoint: str | None = None

    @property
    def ranks(self) -> int:
        return rank_count(self.gpus, self.nodes)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        encoder: str,
        seed: int | None = None,
        fetched_weights: str | None = None,
    ) -> TrainSettings:
        """The settings of ``encoder`` in a validated config. ``seed``: one of training.seeds
        (default: the first); ``fetched_weights``: the file the ``encoder_weights`` rule fetched,
        used where the encoder's weights are ``imagenet`` (training reads only that file)."""
        training, chosen = config["training"], config["encoders"][encoder]
        weights = chosen.get("weights")
        return cls(
            encoder=encoder,
            epochs=training["epochs"],
            batch_size=chosen["batch_size"],
            learning_rate=learning_rate(training, chosen),
            weight_decay=training["weight_decay"],
            pct_start=training["pct_start"],
            loss=config["loss"]["type"],
            dice_smooth=config["loss"]["dice_smooth"],
            mixed_precision=training["mixed_precision"],
            channels_last=training["channels_last"],
            augmentation=dict(training["augmentation"]),
            seed=training_seeds(training)[0] if seed is None else int(seed),
            encoder_weights=fetched_weights if weights == "imagenet" else weights,
            eval_batch_size=config["evaluation"]["batch_size"],
            device=training["device"],
            compile=training["compile"],
            validate_every=training["validate_every"],
            checkpoint_minutes=training["checkpoint_minutes"],
            gpus=training["gpus"],
            nodes=training["nodes"],
        )

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> TrainSettings:
        """Settings from a checkpoint's or a rule's record, refusing keys this version lacks."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(record) - known)
        if unknown:
            raise ValueError(
                f"unknown training settings {unknown}: expected some of {sorted(known)}"
            )
        return cls(**record)


def rank_count(gpus: int, nodes: int) -> int:
    """The data-parallel ranks of a run: ``training.gpus`` on each of ``training.nodes`` nodes."""
    return gpus * nodes


def check_batch_shares(encoder: str, batch: int, ranks: int) -> None:
    """The batch size is the global batch, so every rank must get the same share of it."""
    if batch % ranks:
        raise ValueError(
            f"encoders.{encoder}.batch_size {batch} cannot be shared evenly by training.gpus × "
            f"training.nodes = {ranks} ranks (the batch size is the global batch): make it a "
            "multiple of the number of ranks"
        )


def learning_rate(training: Mapping[str, Any], chosen: Mapping[str, Any]) -> float:
    """The encoder's own ``learning_rate``, else the linear scaling rule: base lr × batch / base
    batch (Goyal et al.), so encoders with other batch sizes train comparably."""
    if chosen.get("learning_rate"):
        return float(chosen["learning_rate"])
    return training["base_learning_rate"] * chosen["batch_size"] / training["base_batch_size"]
