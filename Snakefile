# trackrank: audio -> CQT shards -> oracle rankings -> triplets -> training -> metrics -> report.
# See README.md; the stages are one .smk each under workflow/rules/.

import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

sys.path.insert(0, f"{workflow.basedir}/src")  # the package of this checkout, installed or not
from trackrank.config import config_problems, typed_values
from trackrank.learn.settings import expand_systems, starts_from

min_version("9.17")  # 9.10-9.16 overbook --cores (upstream issue 3913)


configfile: "config.yaml"


config.update(typed_values(config))
problems = config_problems(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")
if problems:  # one line per wrong key, not Snakemake's dump of the whole schema
    raise WorkflowError("invalid configuration:\n  " + "\n  ".join(problems))
validate(config, "workflow/schemas/config.schema.yaml")  # fills in the defaults
config["train"]["systems"] = expand_systems(config["train"]["systems"])
for _system in config["train"]["systems"]:
    if (_start := starts_from(_system)) and _start not in config["train"]["systems"]:
        raise WorkflowError(f"train.systems: {_system} starts from {_start}'s trained network: list {_start} too")


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/scores.smk"
include: "workflow/rules/catalog.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/oracle.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/references.smk"
include: "workflow/rules/index.smk"


rule all:
    input:
        rules.features.input,
        rules.rejected_tracks.output,
        rules.oracle.input,
        rules.train.input,
        rules.report.output,
        rules.listen_page.output,
        rules.index_default.output if INDEXED else [],  # no TL system, no index
