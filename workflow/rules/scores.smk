# The built-in real-music catalog (catalog: scores): public-domain scores of the music21 corpus,
# arranged and rendered with FluidSynth, one job per render shard, in the user catalog format.

from trackrank.data.scores.plan import catalog_plan, ScoresSettings

SCORES_SETTINGS = ScoresSettings.from_config(config)
# The plan (piece, artist and shard of each track) is drawn from the seed without parsing a score,
# so each shard's audio files are known here; only a scores run pays for it.
SCORES_PLAN = catalog_plan(SCORES_SETTINGS) if config["catalog"] == "scores" else None
SCORE_SHARDS = range(SCORES_SETTINGS.n_shards) if SCORES_PLAN is not None else []

for score_shard in SCORE_SHARDS:

    rule:
        name:
            f"render_scores_{score_shard:03d}"
        output:
            tags=f"{SCORES_DIR}/shards/{score_shard:03d}.tags.csv",
            arrangements=f"{SCORES_DIR}/shards/{score_shard:03d}.arrangements.csv",
            # Listed file by file, so that replacing one rendered track reruns only its feature shard.
            audio=[f"{SCORES_DIR}/{path}" for path in SCORES_PLAN.loc[SCORES_PLAN.shard == score_shard, "path"]],
        log:
            f"results/logs/render_scores/{score_shard:03d}.log",
        benchmark:
            f"results/benchmarks/render_scores/{score_shard:03d}.tsv"
        conda:
            "../../envs/trackrank.yaml"
        params:
            plan=SCORES_PLAN.loc[SCORES_PLAN.shard == score_shard],
            settings=SCORES_SETTINGS,
        script:
            "../scripts/render_scores.py"


rule score_catalog:
    input:
        tags=rendered("tags"),
        arrangements=rendered("arrangements"),
    output:
        tags=f"{SCORES_DIR}/tags.csv",
        meta=f"{SCORES_DIR}/tags_meta.csv",
        arrangements=f"{SCORES_DIR}/arrangements.csv",
        untagged=f"{SCORES_DIR}/untagged.csv",  # scores.untagged_share of the tracks, their tags withheld
    log:
        "results/logs/score_catalog/score_catalog.log",
    conda:
        "../../envs/trackrank.yaml"
    params:
        settings=SCORES_SETTINGS,
    script:
        "../scripts/score_catalog.py"
