#!/bin/bash
#SBATCH --job-name=jugnb-work
#SBATCH --array=0-2
#SBATCH --cpus-per-task=2
#SBATCH --output=<PROJECT>/.jugnb/jobs/work-<STAMP>/%A_%a.log
#SBATCH --mem=1G
#SBATCH --time=10
#SBATCH --partition=debug
#SBATCH --account=lab
#SBATCH --qos=normal
# Written by jugnb submit. Each array task runs jugnb's workers on work.ipynb's jugdir;
# jug's locks make every task run once, whichever array task gets to it first.
set -euo pipefail
source <ENV>/bin/activate
cd <PROJECT>
echo "jugnb: array task ${SLURM_ARRAY_TASK_ID:-?} of job ${SLURM_ARRAY_JOB_ID:-?} on $(hostname)"
exec <PYTHON> -m jugnb execute work.ipynb --module work --jugdir <PROJECT>/work.jugdata -j "${SLURM_CPUS_PER_TASK:-1}"
