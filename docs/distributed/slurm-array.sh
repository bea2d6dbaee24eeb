#!/usr/bin/env bash
# N weightsearch workers on one study, as a SLURM job array.
#
#   sbatch --array=0-7 docs/distributed/slurm-array.sh studies/digits_lt_cnn.toml
#
# Each array task joins the study and runs trials until the study holds search.n_trials
# trials in total, across all tasks. A task killed by the scheduler leaves a RUNNING trial
# whose heartbeat stops; the next worker marks it failed and re-queues it.
#SBATCH --job-name=weightsearch
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=weightsearch-%A_%a.log
set -euo pipefail
SPEC=${1:?usage: sbatch --array=0-N slurm-array.sh SPEC}
: "${OPTUNA_URL:?set OPTUNA_URL=postgresql://user:password@dbhost:5432/optuna}"
: "${MLFLOW_URI:=http://mlflow-host:5000}"
export WEIGHTSEARCH_THREADS=${SLURM_CPUS_PER_TASK:-2}
source .venv/bin/activate
exec python -m weightsearch worker "$SPEC" --storage "$OPTUNA_URL" \
    --tracking-uri "$MLFLOW_URI" --worker-index "${SLURM_ARRAY_TASK_ID:-0}" --quiet
