"""Batch-system launchers: submit a notebook's workers, watch and cancel their jobs (SLURM for now)."""

from __future__ import annotations

from .base import JobRequest, JobState, Launcher, LauncherError
from .slurm import SlurmLauncher

__all__ = ["JobRequest", "JobState", "Launcher", "LauncherError", "SlurmLauncher"]
