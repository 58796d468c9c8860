"""``hydra/sweeper=optuna``: Optuna (>= 4) through Hydra's Sweeper API: ask the study, launch, tell.

Hydra imports every module under ``hydra_plugins`` at start-up, so this one imports Optuna only
when a sweep uses it (``mnist_lab.sweeps.study``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
        self.search = search = studies.open_search(self.config, arguments)
        custom = search.custom and (search.custom, self.config)
        self._retry_dead(first=True)
        self.held: list = []  # the trials this process runs now: its heartbeat covers those still waiting their turn
        job_idx = 0
        with Beat(lambda: studies.open_study(sweeper), lambda: [t.number for t in self.held], search.every_s):
            while (todo := min(sweeper.n_jobs, studies.to_ask(search.study, sweeper.n_trials))) > 0:
                asked = (
                    studies.ask(search.study, search.space, sweeper.sampler, sweeper.n_trials, custom)
                    for _ in range(todo)
                )
                self.held = [trial for trial in asked if trial]  # None: the study already holds n_trials
                if not self.held:
                    break
                job_idx = self._launch(job_idx)
                self._retry_dead()
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(studies.results(search.study)), sweep_dir / "optimization_results.yaml")
        studies.write_plots(search.study, sweep_dir, search.names)

    def _retry_dead(self, first: bool = False) -> None:
        """Ask again the trials that dead sweep processes, here or on other machines, left running."""
        from mnist_lab.logs import get_logger
        from mnist_lab.sweeps import study as studies

        study = self.search.study
        retried = studies.retry_dead(study, grace_s=self.search.grace_s)
        if first or retried:
            get_logger(__name__).info(
                f"Study {study.study_name!r}: {studies.counted(study)} of {self.config.hydra.sweeper.n_trials} "
                "trials there" + (f", {retried} left running by a dead sweep process asked again" if retried else "")
            )

    def _launch(self, job_idx: int) -> int:
        from mnist_lab.sweeps import study as studies

        search = self.search
        if search.folds:
            return self._launch_folds(self.held, job_idx)
        jobs = self.launcher.launch([studies.overrides(t, search.fixed) for t in self.held], initial_job_idx=job_idx)
        for trial, job in zip(self.held, jobs):
            studies.tell(search.study, trial, job, search.names)
        return job_idx + len(jobs)

    def _launch_folds(self, trials: list, job_idx: int) -> int:
        """The trials' folds, fold by fold across them; the fold pruner may stop a trial between its folds."""
        from mnist_lab.sweeps import study as studies

        study, fixed, folds = self.search.study, self.search.fixed, self.search.folds
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
