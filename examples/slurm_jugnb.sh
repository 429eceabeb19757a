#!/usr/bin/env bash
#SBATCH --job-name=jugnb
#SBATCH --array=1-8
#SBATCH --cpus-per-task=1
#SBATCH --mem=2G
#SBATCH --time=02:00:00
#SBATCH --output=jugnb-%A_%a.log
#
# Run a notebook's Jug tasks on the nodes of a SLURM cluster, as a job array: each array task runs
# `jugnb execute` on the same notebook and the same jugdir, and Jug's locks make sure that every task runs
# once, whichever node gets to it first. Results land in the jugdir, where the notebook loads them.
#
#   sbatch examples/slurm_jugnb.sh notebooks/grid_search.ipynb                      # 8 workers (--array)
#   sbatch --array=1-32 examples/slurm_jugnb.sh analysis.ipynb --jugdir redis://head:6379/0
#
# - Save the notebook first: `jugnb execute` reads the .ipynb file, not a kernel.
# - Every node must see the jugdir: the default <module>.jugdata folder beside the notebook on a shared
#   filesystem, or a redis server that the nodes can reach (--jugdir redis://host:port/db).
# - Arguments after the notebook go to `jugnb execute`: jug execute's options (--jugdir, --keep-going,
#   --name, ...), and jugnb's --module.
# - Watch the run from the notebook: `%jug status --watch` counts the tasks these workers run.
# - A node killed with SIGKILL (the time limit's last resort, a node failure) leaves the lock of the task it
#   ran behind. Once no worker runs, `jugnb cleanup NOTEBOOK.ipynb --locks-only` removes such locks. With
#   `--jugdir file_keepalive:PATH`, jug marks them failed after 30 minutes and
#   `jugnb cleanup NOTEBOOK.ipynb --failed-only` removes only those, even while other workers run.
# - One job with N tasks works too: `#SBATCH --ntasks=8`, then `srun jugnb execute "$notebook" "$@"`.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: sbatch slurm_jugnb.sh NOTEBOOK.ipynb [jugnb execute options...]" >&2
    exit 2
fi
notebook=$1
shift

# Make `jugnb` available, as your site does it (a module, a virtual environment, conda), e.g.:
#   module load python/3.11 && source "$HOME/venvs/jugnb/bin/activate"
command -v jugnb >/dev/null || { echo "jugnb is not on PATH on $(hostname): activate its environment" >&2; exit 2; }

echo "array task ${SLURM_ARRAY_TASK_ID:-?} of job ${SLURM_ARRAY_JOB_ID:-?} on $(hostname): jugnb execute $notebook $*"
exec jugnb execute "$notebook" "$@"
