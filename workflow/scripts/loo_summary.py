from heritage_damage_seg.evaluation.loo import summarise, summary_table, write_summary
from heritage_damage_seg.io import read_json
from heritage_damage_seg.logs import logged
from heritage_damage_seg.report.tables import write_loo_summary_html

with logged(snakemake.log[0]) as log:
    folds = read_json(snakemake.input.folds)["folds"]
    names = [f["fold"] for f in folds]
    encoders = snakemake.params.encoders
    metrics = list(snakemake.input.metrics)
    summary = summarise(
        snakemake.wildcards.family,
        folds,
        {
            e: dict(zip(names, metrics[i * len(names) : (i + 1) * len(names)]))
            for i, e in enumerate(encoders)
        },
        dict(zip(names, snakemake.input.splits)),
    )
    write_summary(summary, snakemake.output.json, snakemake.output.csv)
    write_loo_summary_html(summary, snakemake.output.html)
    log.info("\n%s", summary_table(summary).to_string(index=False))
