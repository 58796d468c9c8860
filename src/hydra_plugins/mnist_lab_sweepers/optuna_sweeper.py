"""``hydra/sweeper=optuna``: Optuna (>= 4) through Hydra's Sweeper API: ask the study, launch, tell.

Hydra imports every module under ``hydra_plugins`` at start-up, so this one imports Optuna only
when a sweep uses it (``mnist_lab.sweeps.study``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class OptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        pass  # the settings are read from hydra.sweeper in sweep(): the runs read them there too

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        from mnist_lab.errors import UserError

        try:
            self._sweep(arguments)
        except UserError as err:  # a setting of the sweep itself, refused before (or between) its runs
            raise SystemExit(f"error: {err}") from None

    def _sweep(self, arguments: list[str]) -> None:
        from mnist_lab.sweeps import study as studies
        from mnist_lab.sweeps.heartbeat import Beat

        sweeper = self.config.hydra.sweeper
        space, fixed = studies.sweep_space(self.config, arguments)
        custom = studies.custom_space(sweeper)
        folds = studies.folds_of(self.config.data, fixed)
        self.names = studies.objectives(sweeper, self.config.optimized_metric)
        pruner = "fold_pruner" if folds else "pruner"
        if len(self.names) > 1:
            pruner = studies.several_objectives(sweeper, folds, fixed)
        study = studies.open_study(sweeper, sampler=studies.build_part(sweeper, "sampler"), pruner=pruner)
        studies.claim_space(study, space)
        every_s, self.grace_s = studies.heartbeat_times(sweeper)
        self._retry_dead(study, first=True)
        self.held: list = []  # the trials this process runs now: its heartbeat covers those still waiting their turn
        job_idx = 0
        with Beat(lambda: studies.open_study(sweeper), lambda: [t.number for t in self.held], every_s):
            while (todo := min(sweeper.n_jobs, studies.to_ask(study, sweeper.n_trials))) > 0:
                asked = (
                    studies.ask(study, space, sweeper.sampler, sweeper.n_trials, custom and (custom, self.config))
                    for _ in range(todo)
                )
                self.held = [trial for trial in asked if trial]  # None: the study already holds n_trials
                if not self.held:
                    break
                job_idx = self._launch(study, fixed, folds, job_idx)
                self._retry_dead(study)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(studies.results(study)), sweep_dir / "optimization_results.yaml")
        studies.write_plots(study, sweep_dir, self.names)

    def _retry_dead(self, study: Any, first: bool = False) -> None:
        """Ask again the trials that dead sweep processes, here or on other machines, left running."""
        from mnist_lab.logs import get_logger
        from mnist_lab.sweeps import study as studies

        sweeper = self.config.hydra.sweeper
        retried = studies.retry_dead(study, grace_s=self.grace_s)
        if first or retried:
            get_logger(__name__).info(
                f"Study {study.study_name!r}: {studies.counted(study)} of {sweeper.n_trials} trials there"
                + (f", {retried} left running by a dead sweep process asked again" if retried else "")
            )

    def _launch(self, study: Any, fixed: dict[str, str], folds: Optional[int], job_idx: int) -> int:
        from mnist_lab.sweeps import study as studies

        if folds:
            return self._launch_folds(study, self.held, fixed, folds, job_idx)
        jobs = self.launcher.launch([studies.overrides(t, fixed) for t in self.held], initial_job_idx=job_idx)
        for trial, job in zip(self.held, jobs):
            studies.tell(study, trial, job, self.names)
        return job_idx + len(jobs)

    def _launch_folds(self, study: Any, trials: list, fixed: dict[str, str], folds: int, job_idx: int) -> int:
        """The trials' folds, fold by fold across them; the fold pruner may stop a trial between its folds."""
        from mnist_lab.sweeps import study as studies

        values: dict[int, list[float]] = {t.number: [] for t in trials}
        for fold in range(folds):
            if not trials:  # every trial pruned (or failed) before this fold
                break
            jobs = self.launcher.launch(
                [studies.fold_overrides(t, fixed, fold) for t in trials], initial_job_idx=job_idx
            )
            job_idx += len(jobs)
            trials = [t for t, job in zip(trials, jobs) if studies.tell_fold(study, t, job, values[t.number], folds)]
        return job_idx
