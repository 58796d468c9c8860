"""The Optuna side of ``sweep=optuna``: the search space from Hydra's sweep syntax, the study and its storage,
trials asked and told, and the study's plots. The sweeper plugin (``hydra_plugins.mnist_lab_sweepers``) and
the runs' pruning callback (``sweeps.pruning``) use it."""

from __future__ import annotations

import functools
import json
import os
import socket
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException, InstantiationException
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from mnist_lab.building import build
from mnist_lab.errors import ConfigError
from mnist_lab.known_noise import hide_known_noise
from mnist_lab.logs import get_logger
from mnist_lab.sweeps.swept_keys import missing_keys
from mnist_lab.training.run_folder import MEASURES, RESULTS, read_result
from mnist_lab.training.settings import fit_batch_size
from mnist_lab.validation import check_arguments

log = get_logger(__name__)

SPACE_KEY = "search_space"  # the study's user attribute that holds the search space it was created with
OWNER_KEY = "sweeper"  # a trial's user attribute: the sweep process (host:pid) that runs it
# A trial's user attribute that keeps it out of n_trials: "killed" (asked again) or "surplus" (asked past n_trials).
UNCOUNTED_KEY = "uncounted"
HEARTBEAT_KEY = "heartbeat"  # a running trial's user attribute: the time (time.time()) it last showed it is alive
RETRY_KEY = "retry_of"  # a trial's user attribute: the number of the dead trial whose parameters it runs again
OVERRIDES_KEY = "overrides"  # a trial's user attribute: the overrides its custom_search_space returned
LR_KEY = "model.optimizer.lr"  # what a model without a search_space is searched over
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING, TrialState.FAIL)


def distribution(key: str, text: str) -> Optional[BaseDistribution]:
    """``interval``, ``tag(log, interval)``, ``range`` or ``choice`` as an Optuna distribution; None for a value."""
    try:
        override = OverridesParser.create().parse_override(f"{key}={text}")
    except HydraException as err:
        raise ConfigError(f"hydra.sweeper.params.{key}={text} is not allowed: {err}") from None
    value = override.value()
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if value.start >= value.end or (log and value.start <= 0):
            needs = "0 < low < high for log" if log else "low < high"
            raise ConfigError(f"hydra.sweeper.params.{key}={text} is not allowed: it needs {needs}")
        return FloatDistribution(value.start, value.end, log=log)
    if isinstance(value, RangeSweep) and all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
        return IntDistribution(value.start, value.stop - value.step, step=value.step)
    if isinstance(value, (ChoiceSweep, RangeSweep)):
        return CategoricalDistribution(list(override.sweep_iterator()))
    return None


def search_space(params: dict[str, str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """``hydra.sweeper.params`` split into what is searched and what is fixed (a plain value)."""
    space, fixed = {}, {}
    for key, text in params.items():
        found = distribution(key, str(text))
        if found is None:
            fixed[key] = str(text)
        else:
            space[key] = found
    return space, fixed


CustomSpace = Callable[[DictConfig, optuna.Trial], Optional[dict[str, Any]]]


def custom_space(sweeper: DictConfig) -> Optional[CustomSpace]:
    """``hydra.sweeper.custom_search_space``: a function ``(cfg, trial) -> overrides or None`` that suggests what
    the flat syntax cannot say (a key searched only under another's value), as in Hydra's Optuna sweeper."""
    path = sweeper.get("custom_search_space")
    if not path:
        return None
    try:
        return get_method(path)
    except Exception as err:  # noqa: BLE001 - Hydra says what it could not import
        reason = str(err).splitlines()[0]
        raise ConfigError(f"hydra.sweeper.custom_search_space={path} is not allowed: {reason}") from None


def sweep_space(
    config: DictConfig, arguments: list[str]
) -> tuple[dict[str, BaseDistribution], dict[str, Optional[str]]]:
    """What a sweep searches and fixes: the model's ``search_space`` (unless a custom_search_space replaces it),
    then ``hydra.sweeper.params``, then the command line; when none of them (nor a custom space) searches
    anything, the learning rate a decade either side of the model's (one line says so)."""
    custom = config.hydra.sweeper.get("custom_search_space")
    params = {
        # A custom_search_space replaces the model's: it says what to search itself.
        **OmegaConf.to_container((not custom and config.get("search_space")) or OmegaConf.create()),
        **OmegaConf.to_container(config.hydra.sweeper.get("params") or OmegaConf.create()),
        **dict(a.split("=", 1) for a in arguments if "=" in a),
    }
    model = config.hydra.runtime.choices.get("model")
    missing = missing_keys(config, list(params))
    if missing:
        raise ConfigError(
            f"the search sets {', '.join(missing)}, which the config of model={model} does not have; search only "
            "keys it has (in its search_space, hydra.sweeper.params or on the command line)."
        )
    space, fixed = search_space(params)
    fixed |= {a: None for a in arguments if "=" not in a}  # ~key: deleted in every run
    if not space and not custom:
        lr = config.model.optimizer.lr
        low, high = f"{lr / 10:.3g}", f"{lr * 10:.3g}"
        space[LR_KEY] = FloatDistribution(float(low), float(high), log=True)
        fixed.pop(LR_KEY, None)
        log.info(
            f"model={model} has no search_space: searching {LR_KEY} from {low} to {high}. "
            "List what to search under search_space: in its YAML (docs/own_model.md)."
        )
    return space, fixed


@functools.lru_cache(maxsize=None)
def _database(url: str) -> optuna.storages.RDBStorage:
    """One storage, and so one connection pool, per database a process uses: the sweeper, its heartbeat thread
    and every run it launches in-process open the study again and again, and PostgreSQL refuses clients past
    max_connections (100 by default)."""
    return optuna.storages.RDBStorage(url)


def open_storage(storage: Any) -> Any:
    """A URL Optuna opens (``sqlite:///...``, ``postgresql://...``), a journal file's path, or a ``_target_``."""
    if isinstance(storage, (dict, DictConfig)):
        check_arguments(storage, "hydra.sweeper.storage")  # the sweeper's settings are not the run's: checked here
        return build(storage)
    if str(storage).startswith("sqlite:///"):  # SQLite makes the file, not its folder
        Path(str(storage).removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if "://" in str(storage):
        return _database(str(storage))
    path = Path(str(storage))
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def build_part(sweeper: DictConfig, part: str) -> Any:
    """The sweeper's ``sampler`` or ``pruner``, or one line naming it when Optuna has no such class."""
    check_arguments(sweeper[part], f"hydra.sweeper.{part}")  # the sweeper's settings are not the run's
    try:
        return build(sweeper[part])
    except InstantiationException as err:
        reason = str(err).splitlines()[0].split(", set env var HYDRA_FULL_ERROR")[0]
        raise ConfigError(f"hydra.sweeper.{part}._target_={sweeper[part]._target_} is not allowed: {reason}") from None


def directions(sweeper: DictConfig) -> list[str]:
    """``hydra.sweeper.direction``: one (``maximize``) or a list, one per objective."""
    given = sweeper.direction
    return [str(given)] if isinstance(given, str) else [str(d) for d in given]


def objectives(sweeper: DictConfig, optimized_metric: str) -> list[str]:
    """What a search optimises: ``hydra.sweeper.objectives`` (a result.json key each, one per direction), or the
    run's ``optimized_metric``; refused in one line when they do not fit."""
    names = list(sweeper.get("objectives") or [optimized_metric])
    wanted = directions(sweeper)
    known = (*RESULTS, *MEASURES)
    if len(names) != len(wanted):
        raise ConfigError(
            f"hydra.sweeper.objectives={names} is not allowed: hydra.sweeper.direction gives {len(wanted)} "
            f"direction(s), {wanted}; name one objective per direction, from {', '.join(known)}."
        )
    unknown = [n for n in names if n not in known]
    if unknown or any(d not in ("maximize", "minimize") for d in wanted):
        raise ConfigError(
            f"hydra.sweeper.objectives={names}, direction={wanted} is not allowed: objectives are "
            f"{', '.join(known)}; directions maximize or minimize."
        )
    return names


def several_objectives(sweeper: DictConfig, folds: Optional[int], fixed: dict[str, Optional[str]]) -> str:
    """A search of several objectives runs without pruning (Optuna prunes one objective only; one line says so
    when a pruner is set) and its runs without the pruning callback; fold searches are refused. Returns the
    pruner setting to open the study with (none)."""
    if folds:
        raise ConfigError(
            f"data.folds={folds} is not allowed with several objectives: a fold search tells one mean; "
            "search the folds with one objective, or drop data.folds."
        )
    if sweeper.get("pruner") and sweeper.pruner.get("_target_") != "optuna.pruners.NopPruner":
        log.info("Pruning is off: Optuna cannot prune a study of several objectives; each trial trains all its epochs.")
    fixed["~callbacks.optuna_pruning"] = None
    return "no_pruner"


def open_study(sweeper: DictConfig, sampler: Any = None, pruner: str = "pruner") -> optuna.Study:
    """The study that ``sweeper`` (``hydra.sweeper``) names, created on first use, with its ``pruner``
    (``fold_pruner`` when a trial's steps are its folds)."""
    hide_known_noise()  # "Using an existing study" at every opening; the fold pruner's "experimental"
    try:
        return optuna.create_study(
            study_name=sweeper.study_name,
            storage=open_storage(sweeper.storage),
            sampler=sampler,
            pruner=build_part(sweeper, pruner) if sweeper.get(pruner) else optuna.pruners.NopPruner(),
            directions=directions(sweeper),
            load_if_exists=True,
        )
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever a storage raises (SQLAlchemy's, a driver's, the OS's)
        reason = str(err).splitlines()[0]
        raise ConfigError(f"hydra.sweeper.storage={sweeper.storage} cannot be opened: {reason}") from None


def claim_space(study: optuna.Study, space: dict[str, BaseDistribution]) -> None:
    """Record the search space in a new study; refuse a stored study that searches another one."""
    ours = {key: optuna.distributions.distribution_to_json(d) for key, d in space.items()}
    stored = study.user_attrs.get(SPACE_KEY)
    if stored is None:
        study.set_user_attr(SPACE_KEY, ours)
    elif stored != ours:
        raise ConfigError(
            f"study {study.study_name!r} in this storage searches another space "
            f"({', '.join(sorted(stored))}); use a new hydra.sweeper.study_name or hydra.sweep.dir"
        )


@dataclass
class Search:
    """A sweep process's search: its study, what it searches and fixes, its custom space, folds and objectives,
    and how often a trial's heartbeat is due and how long one may stay silent."""

    study: optuna.Study
    space: dict[str, BaseDistribution]
    fixed: dict[str, Optional[str]]
    custom: Optional[CustomSpace]
    folds: Optional[int]
    names: list[str]
    every_s: float
    grace_s: float


def open_search(config: DictConfig, arguments: list[str]) -> Search:
    """The search of ``config`` (a sweep's composed config) and its command line's ``arguments``: each setting of
    the sweeper checked, a bad one refused in one line before any trial runs, then its study opened (created on
    first use) with its search space claimed."""
    sweeper = config.hydra.sweeper
    space, fixed = sweep_space(config, arguments)
    custom = custom_space(sweeper)
    folds = folds_of(config.data, fixed)
    names = objectives(sweeper, config.optimized_metric)
    pruner = several_objectives(sweeper, folds, fixed) if len(names) > 1 else "fold_pruner" if folds else "pruner"
    every_s, grace_s = heartbeat_times(sweeper)
    study = open_study(sweeper, sampler=build_part(sweeper, "sampler"), pruner=pruner)
    claim_space(study, space)
    return Search(study, space, fixed, custom, folds, names, every_s, grace_s)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead(owner: str) -> bool:
    """Whether ``owner`` was a process on this machine that is no longer running (one elsewhere: unknown)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        pass
    return False


def running_trial(study: optuna.Study, number: int) -> optuna.Trial:
    """Trial ``number`` of ``study`` as a live ``optuna.Trial``, from any process (a run's pruning callback).

    The one use of Optuna's private API: a Trial is made from the storage's internal trial id, and no
    public call maps a trial's number to it (``ask`` only makes new trials).
    """
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.Trial(study, trial_id)


def heartbeat_times(sweeper: DictConfig) -> tuple[float, float]:
    """``hydra.sweeper.heartbeat_s`` and ``grace_s`` (null: 3 x heartbeat_s), refused unless positive numbers."""
    every = _seconds("heartbeat_s", sweeper.heartbeat_s)
    return every, _seconds("grace_s", sweeper.get("grace_s") or 3 * every)


def _seconds(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"hydra.sweeper.{key}={value} is not allowed: it must be a number of seconds above 0")
    return float(value)


def _silent(trial: optuna.trial.FrozenTrial, grace_s: float, now: float) -> bool:
    """Whether a running trial's last heartbeat (or its start, before its first) is older than ``grace_s``."""
    last = trial.user_attrs.get(HEARTBEAT_KEY) or (trial.datetime_start.timestamp() if trial.datetime_start else now)
    return now - last > grace_s


def retry_dead(study: optuna.Study, grace_s: float) -> int:
    """Fail the RUNNING trials of dead sweep processes and queue their parameters again, once.

    Dead: killed on this machine (its pid is gone), or silent for ``grace_s`` on any machine. A retry that
    dies too stays failed and counts. Several processes may find one trial: only the one whose tell lands
    queues it again.
    """
    now, retried = time.time(), 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not (_dead(trial.user_attrs.get(OWNER_KEY, "")) or _silent(trial, grace_s, now)):
            continue
        first_death = RETRY_KEY not in trial.user_attrs
        try:
            if first_death:
                running_trial(study, trial.number).set_user_attr(UNCOUNTED_KEY, "killed")
            study.tell(trial.number, state=TrialState.FAIL)
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, ValueError):
            continue  # another sweep process told it first
        if first_death and trial.params:  # without parameters it died before its run: a new trial replaces it
            study.enqueue_trial(trial.params, user_attrs={RETRY_KEY: trial.number})
            retried += 1
    return retried


def counted(study: optuna.Study, before: Optional[int] = None) -> int:
    """Trials that count towards ``n_trials`` (numbered below ``before``): all but those a killed sweep left."""
    trials = study.get_trials(deepcopy=False, states=COUNTED)
    return sum(1 for t in trials if not t.user_attrs.get(UNCOUNTED_KEY) and (before is None or t.number < before))


def to_ask(study: optuna.Study, n_trials: int) -> int:
    """How many trials are still to be asked: those short of ``n_trials``, and the queued ones (retries), which
    count already but have not run."""
    queued = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    return n_trials - counted(study) + queued


def _suggest(trial: optuna.Trial, key: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(key, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_categorical(key, dist.choices)


def ask(
    study: optuna.Study,
    space: dict[str, BaseDistribution],
    sampler: DictConfig,
    n_trials: int,
    custom: Optional[tuple[CustomSpace, DictConfig]] = None,
) -> Optional[optuna.Trial]:
    """A new trial with its parameters, or None once the study holds ``n_trials``; ``custom``: a
    custom_search_space function and the config it is given, called after the flat space is suggested.

    A seeded sampler is seeded again for each trial, with its seed plus the trial's number:
    one sweep process repeats itself, and several on one study never propose the same stream.
    """
    trial = study.ask()
    trial.set_user_attr(OWNER_KEY, _owner())
    trial.set_user_attr(HEARTBEAT_KEY, time.time())
    if counted(study, before=trial.number) >= n_trials:  # another process asked the last one first
        trial.set_user_attr(UNCOUNTED_KEY, "surplus")
        study.tell(trial, state=TrialState.FAIL)
        return None
    if sampler.get("seed") is not None:
        study.sampler = build(sampler, seed=sampler.seed + trial.number)
    for key, dist in space.items():
        _suggest(trial, key, dist)
    if custom is not None:
        more = custom[0](custom[1], trial) or {}
        trial.set_user_attr(OVERRIDES_KEY, {key: str(value) for key, value in more.items()})
    return trial


def overrides(trial: optuna.Trial, fixed: dict[str, Optional[str]]) -> list[str]:
    """A trial's job overrides: its parameters, what its custom_search_space returned, the fixed ones, and its
    number (for its pruning callback)."""
    chosen = {**trial.params, **trial.user_attrs.get(OVERRIDES_KEY, {}), **fixed}
    return [key if value is None else f"{key}={value}" for key, value in chosen.items()] + [f"trial={trial.number}"]


def tell(study: optuna.Study, trial: optuna.Trial, job: JobReturn, names: Optional[list[str]] = None) -> None:
    """Tell the study how the trial's run ended, from its result.json: its objective (``names``: several, from
    the record), pruned, or failed.

    A run of a sweep returns NaN when it is pruned or fails (train.py's other runs go on), so its
    record says which.
    """
    result = read_result(Path(job.hydra_cfg.hydra.runtime.output_dir))
    value = job.return_value if job.status == JobStatus.COMPLETED else None
    values = [value] if not names or len(names) == 1 else [result.get(n) for n in names]
    if result.get("status") == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    elif job.status != JobStatus.COMPLETED or any(v is None or v != v for v in values):
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, [float(v) for v in values] if len(values) > 1 else float(values[0]))


def fold_overrides(trial: optuna.Trial, fixed: dict[str, Optional[str]], fold: int) -> list[str]:
    """A trial's run of one fold: the sweeper, not the run, reports to the trial (after each fold)."""
    return [*overrides(trial, fixed), f"data.fold={fold}", "~callbacks.optuna_pruning"]


def tell_fold(study: optuna.Study, trial: optuna.Trial, job: JobReturn, values: list[float], folds: int) -> bool:
    """Report how one of the trial's folds ended; tell the study once it is done. Whether it goes on.

    WilcoxonPruner compares the folds' own values, paired by fold; the other pruners the running mean.
    The last fold is never pruned: its mean is the trial's value.
    """
    value = job.return_value if job.status == JobStatus.COMPLETED else None
    if value is None or value != value:  # failed (or pruned by something else): the trial has no mean
        study.tell(trial, state=TrialState.FAIL)
        return False
    values.append(float(value))
    trial.set_user_attr("fold_values", values)
    wilcoxon = isinstance(study.pruner, optuna.pruners.WilcoxonPruner)
    trial.report(values[-1] if wilcoxon else statistics.mean(values), step=len(values) - 1)
    if len(values) == folds:
        study.tell(trial, statistics.mean(values))
        return False
    if trial.should_prune():
        study.tell(trial, state=TrialState.PRUNED)
        log.info(
            f"Trial {trial.number} pruned after {len(values)} of {folds} folds "
            f"(fold mean {statistics.mean(values):.4f}; the summary says so)"
        )
        return False
    return True


PLOTS = {
    "optuna_history.png": "plot_optimization_history",
    "optuna_intermediate_values.png": "plot_intermediate_values",
    "optuna_importances.png": "plot_param_importances",
}


INTEGER_X = ("optuna_history.png", "optuna_intermediate_values.png")  # trial numbers; epochs or folds


def _integer_x(ax: Any) -> None:
    """Whole-number ticks on ``ax``'s x axis, one unit wide at least (a 1-epoch search's steps are all 0)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    low, high = ax.get_xlim()
    if high - low < 1:
        middle = (low + high) / 2
        ax.set_xlim(middle - 0.5, middle + 0.5)


def study_plots(study: optuna.Study, names: Optional[list[str]] = None) -> dict[str, Any]:
    """Optuna's own plots of the study, by file name; one it cannot draw yet is left out."""
    import matplotlib
    import optuna.visualization.matplotlib as optuna_plots

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        return {}
    drawn = {}
    several = len(study.directions) > 1  # Optuna's other plots want one target; the front is the result
    for name, plot in ({"optuna_pareto_front.png": "plot_pareto_front"} if several else PLOTS).items():
        try:
            # Optuna switches matplotlib to its ggplot style for good; the context puts it back.
            with warnings.catch_warnings(), matplotlib.rc_context():
                warnings.simplefilter("ignore")  # "experimental", and no legend where there is one kind of trial
                axes = getattr(optuna_plots, plot)(study, **({"target_names": names} if several else {}))
        except (ValueError, RuntimeError, ZeroDivisionError):  # e.g. importances of fewer than two finished trials
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        if name in INTEGER_X:
            _integer_x(figure.axes[0])
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        drawn[name] = figure
    return drawn


def write_plots(study: optuna.Study, sweep_dir: Path, names: Optional[list[str]] = None) -> None:
    """``study_plots`` as PNG files in ``sweep_dir``."""
    from mnist_lab.figures import save

    for name, figure in study_plots(study, names).items():
        save(figure, sweep_dir / name)


def results(study: optuna.Study) -> dict[str, Any]:
    """What optimization_results.yaml holds: the best trial, and how many trials ended how."""
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    summary: dict[str, Any] = {"study": study.study_name, "trials": {s: states.count(s) for s in sorted(set(states))}}
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if finished and len(study.directions) > 1:  # no one best: the Pareto front
        front = [{"trial": t.number, "values": t.values, "params": t.params} for t in study.best_trials]
        summary.update(pareto_front=sorted(front, key=lambda t: t["trial"]))
    elif finished:
        best = study.best_trial
        summary.update(best_trial=best.number, best_value=best.value, best_params=best.params)
    return json.loads(json.dumps(summary, default=str))


def folds_of(data: DictConfig, fixed: dict[str, str]) -> Optional[int]:
    """``data.folds`` of a search, where a trial trains every fold; checked against the datamodule's bounds."""
    if "data.fold" in fixed:
        raise ConfigError(
            f"data.fold={fixed['data.fold']} is not allowed in sweep=optuna: each trial trains all data.folds"
        )
    fit_batch_size(data)  # as each run does: a DataModule that takes no batch_size batches its own way
    check_arguments(data, "data")
    return data.get("folds")
