from pathlib import Path

from heritage_damage_seg.logs import logged
from heritage_damage_seg.synthetic import generate_dataset

with logged(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    settings = snakemake.params.settings  # noqa: F821
    out_dir = Path(snakemake.output.metadata).parent  # noqa: F821
    frame = generate_dataset(out_dir, workers=snakemake.threads, **settings)  # noqa: F821
    log.info("wrote %d synthetic images to %s", len(frame), out_dir)
