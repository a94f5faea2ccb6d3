import pandas as pd

from heritage_damage_seg.logs import logged
from heritage_damage_seg.report import plots

with logged(snakemake.log[0]) as log:
    history = pd.read_csv(snakemake.input.history)
    plots.plot_training_curves(
        history,
        snakemake.output[0],
        encoder=snakemake.wildcards.encoder,
        dpi=snakemake.params.dpi,
    )
    log.info("wrote %s (%d epochs)", snakemake.output[0], len(history))
