from heritage_damage_seg.io import read_json
from heritage_damage_seg.logs import logged
from heritage_damage_seg.loo import summarise, summary_table, write_summary
from heritage_damage_seg.tables import write_loo_summary_html

with logged(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    folds = read_json(snakemake.input.folds)["folds"]  # noqa: F821
    names = [f["fold"] for f in folds]
    encoders = snakemake.params.encoders  # noqa: F821
    metrics = list(snakemake.input.metrics)  # noqa: F821 (encoder-major, fold-minor: loo_summary_inputs)
    summary = summarise(
        snakemake.wildcards.family,  # noqa: F821
        folds,
        {e: dict(zip(names, metrics[i * len(names):(i + 1) * len(names)])) for i, e in enumerate(encoders)},
        dict(zip(names, snakemake.input.splits)),  # noqa: F821
    )
    write_summary(summary, snakemake.output.json, snakemake.output.csv)  # noqa: F821
    write_loo_summary_html(summary, snakemake.output.html)  # noqa: F821
    log.info("\n%s", summary_table(summary).to_string(index=False))
