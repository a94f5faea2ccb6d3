import pandas as pd

from heritage_damage_seg import plots
from heritage_damage_seg.logs import logged

with logged(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    history = pd.read_csv(snakemake.input.history)  # noqa: F821
    plots.plot_training_curves(history, snakemake.output[0], encoder=snakemake.wildcards.encoder,  # noqa: F821
                               dpi=snakemake.params.dpi)  # noqa: F821
    log.info("wrote %s (%d epochs)", snakemake.output[0], len(history))  # noqa: F821
