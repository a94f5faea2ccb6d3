import pandas as pd

from heritage_damage_seg.evaluation.evaluate import mode_difference
from heritage_damage_seg.io import atomic_path, read_json
from heritage_damage_seg.logs import logged
from heritage_damage_seg.report.tables import write_modes_html

with logged(snakemake.log[0]):
    rows = mode_difference(read_json(snakemake.input.cache), read_json(snakemake.input.native))
    with atomic_path(snakemake.output.csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6f")
    write_modes_html(snakemake.wildcards.encoder, rows, snakemake.output.html)
