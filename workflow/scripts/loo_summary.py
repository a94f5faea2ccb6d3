from heritage_damage_seg.evaluation.loo import summarise, summary_table, write_summary
from heritage_damage_seg.io import read_json
from heritage_damage_seg.logs import logged
from heritage_damage_seg.report.tables import write_loo_summary_html

with logged(snakemake.log[0]) as log:
    files = snakemake.params.files
    folds = read_json(files["folds"])["folds"]
    summary = summarise(snakemake.wildcards.family, folds, files["metrics"], files["splits"])
    write_summary(summary, snakemake.output.json, snakemake.output.csv)
    write_loo_summary_html(summary, snakemake.output.html)
    log.info("\n%s", summary_table(summary).to_string(index=False))
