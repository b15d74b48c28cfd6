# trackrank: audio -> CQT shards -> oracle rankings -> triplets -> training -> metrics.
# See README.md; the stages are one .smk each under workflow/rules/.

from snakemake.utils import min_version, validate

min_version("8.20")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/catalog.smk"
include: "workflow/rules/features.smk"


rule all:
    input:
        rules.features.input,
