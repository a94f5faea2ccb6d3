from pathlib import Path

from heritage_damage_seg.data.synthetic import generate_dataset
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:
    settings = snakemake.params.settings
    out_dir = Path(snakemake.output.metadata).parent
    frame = generate_dataset(out_dir, workers=snakemake.threads, **settings)
    log.info("wrote %d synthetic images to %s", len(frame), out_dir)
