"""The cell's Optuna study, shared by worker processes through one storage.

A database URL is an ``RDBStorage`` with heartbeats: a trial silent for 3 heartbeats is failed and
queued again (``RetryHeartbeatStaleTrialCallback``). ``journal:PATH`` or a path ending ``.journal``
or ``.log`` is a ``JournalStorage`` (no heartbeat in Optuna 5: a trial RUNNING past ``stale_after``
is failed and queued again). Exactly ``n_trials``: slot ``i`` (user attribute ``slot``) is a trial
queued with ``enqueue_trial``, under a setup lock, by whichever process finds it missing; the
storage refuses trials not queued, so ``study.optimize`` ends with the queue, and the worker waits
for the trials still running elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from clusterbench.core.errors import UserError
from clusterbench.core.faults import as_fault, faults_named


def default_storage_url(results_dir) -> str:
    return f"sqlite:///{(Path(results_dir or 'results') / 'optuna.db').resolve()}"


def redact(url: str) -> str:
    """The storage URL without its password (it goes into MLflow params)."""
    from urllib.parse import urlsplit

    with contextlib.suppress(ValueError):
        password = urlsplit(url).password
        return url.replace(f":{password}@", ":***@", 1) if password else url
    return url


def journal_path(url: str) -> Path | None:
    if url.startswith("journal:"):
        return Path(url[len("journal:"):]).expanduser()
    return Path(url).expanduser() if "://" not in url and url.endswith((".journal", ".log")) else None


def sqlite_path(url: str) -> Path | None:
    path = url[len("sqlite:///"):].split("?", 1)[0] if url.startswith("sqlite:///") else ""
    return Path(path) if path and path != ":memory:" else None


class QueueEmpty(Exception):
    """``study.ask()`` found no queued trial."""


class _QueuedOnly:
    """Trials come from templates only (``enqueue_trial``, retries), never from a bare ``ask()``."""

    @staticmethod
    def _queued(template_trial):
        if template_trial is None:
            raise QueueEmpty
        return template_trial

    def create_new_trial(self, study_id, template_trial=None):
        return super().create_new_trial(study_id, self._queued(template_trial))

    def _create_new_trial(self, study_id, template_trial=None):  # what Optuna's cache over an RDBStorage calls
        return super()._create_new_trial(study_id, self._queued(template_trial))


_RDB = type("_RDB", (_QueuedOnly, optuna.storages.RDBStorage), {})
_Journal = type("_Journal", (_QueuedOnly, optuna.storages.JournalStorage), {})


def open_storage(url: str, heartbeat: int, on_stale):
    if journal_path(url) is not None:
        journal_path(url).parent.mkdir(parents=True, exist_ok=True)
        return _Journal(optuna.storages.journal.JournalFileBackend(str(journal_path(url))))
    if sqlite_path(url) is not None:
        sqlite_path(url).parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(5):  # two processes creating a server database's schema at once: retry
        try:
            storage = _RDB(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                           heartbeat_stale_trial_callback=on_stale)
            return _sqlite_serialized(storage) if url.startswith("sqlite") else storage
        except ImportError as e:
            # third-party: SQLAlchemy raises the driver's ImportError as the cause, or its own
            driver = getattr(e.__cause__, 'name', None) or e.name
            raise UserError(f"optuna storage {redact(url)}: its database driver ({driver})"
                            " is not installed; PostgreSQL: pip install psycopg2-binary (postgresql+psycopg2://)") from None
        except Exception as e:  # noqa: BLE001 - store problems of any kind get one line
            fault = as_fault(e, sqlite_path(url) or redact(url))  # damaged, full, read-only: no retry helps
            if fault is not None:
                raise fault from None
            last = e
            time.sleep(0.2 * (attempt + 1))
    raise UserError(f"optuna storage {redact(url)}: {type(last).__name__}: {(str(last).strip().splitlines() or [''])[0]}")


def _sqlite_serialized(storage):
    """Write-ahead log (no fsync per commit) and ``BEGIN IMMEDIATE``: every transaction takes the
    write lock first, so two processes cannot both take one queued trial (pysqlite's deferred
    transactions would let both read it as WAITING)."""
    from sqlalchemy import event

    @event.listens_for(storage.engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # transactions are begun below, not by pysqlite
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    event.listen(storage.engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))
    storage.engine.dispose()  # connections opened while creating the schema get the settings too
    return storage


@contextlib.contextmanager
def locked_storage(url: str, name: str, heartbeat: int, on_stale):
    """The storage, under the study's setup lock: a file lock beside a sqlite or journal file (held
    while its schema is created too), or PostgreSQL's advisory lock (it dies with its connection)."""
    path = sqlite_path(url) or journal_path(url)
    if path is not None:
        from clusterbench.core.locks import file_lock

        with file_lock(f"{path}.setup.lock"):  # not .lock: the journal backend's own lock
            yield open_storage(url, heartbeat, on_stale)
        return
    storage = open_storage(url, heartbeat, on_stale)
    if storage.engine.dialect.name != "postgresql":
        yield storage
        return
    from sqlalchemy import text

    key = {"key": int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)}
    with storage.engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
        try:
            yield storage
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)


def make_sampler(kind: str, seed: int):
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)  # grid slots carry all their parameters


def trial_k(trial) -> int | None:
    """K: the trial's ``k``, or the number of clusters it found (a clusterer finding K itself)."""
    k = trial.params.get("k", trial.user_attrs.get("n_clusters"))
    return None if k is None else int(k)


class SharedStudy:
    def __init__(self, url: str, name: str, directions: list[str], slots: list[dict], sampler, cfg, log):
        self.url, self.name, self.directions, self.slots, self.sampler, self.cfg, self.log = (
            url, name, directions, slots, sampler, cfg, log)
        self._retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
        self.run_here: list[int] = []

    def _on_stale(self, study, trial) -> None:
        self.log(f"tuning: trial {trial.number} of a dead worker (no sign of life) marked FAIL and queued again")
        self._retry(study, trial)

    def prepare(self, force: bool, attrs: dict) -> tuple[bool, int]:
        """Create or load the study and queue its missing slots: (new study, slots queued now)."""
        with faults_named(sqlite_path(self.url) or journal_path(self.url)):
            return self._prepare(force, attrs)

    def _prepare(self, force: bool, attrs: dict) -> tuple[bool, int]:
        with locked_storage(self.url, self.name, self.cfg.heartbeat, self._on_stale) as self.storage:
            if force:
                with contextlib.suppress(KeyError):
                    optuna.delete_study(study_name=self.name, storage=self.storage)
            try:
                self.study = optuna.create_study(storage=self.storage, study_name=self.name,
                                                 directions=self.directions, sampler=self.sampler)
                self.study.set_metric_names(attrs["objectives"])
                for key, value in attrs.items():
                    self.study.set_user_attr(key, value)
            except optuna.exceptions.DuplicatedStudyError:
                self.study = optuna.load_study(study_name=self.name, storage=self.storage, sampler=self.sampler)
            created = not self.study.get_trials(deepcopy=False)
            self.fail_stale()
            latest = {t.user_attrs.get("slot"): t for t in self.trials()}
            missing = [i for i in range(len(self.slots)) if i not in latest or latest[i].user_attrs.get("error") == "interrupted"]
            for i in missing:
                self.study.enqueue_trial(self.slots[i], user_attrs={"slot": i})
        return created, len(missing)

    def trials(self) -> list:
        """The study's trials, each slot's latest only (a trial redone supersedes what it redoes)."""
        trials = sorted(self.study.get_trials(deepcopy=False), key=lambda t: t.number)
        return sorted({t.user_attrs.get("slot", f"#{t.number}"): t for t in trials}.values(), key=lambda t: t.number)

    def fail_stale(self) -> None:
        if journal_path(self.url) is None:
            return optuna.storages.fail_stale_trials(self.study)
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.datetime_start is not None and t.datetime_start.timestamp() < time.time() - self.cfg.stale_after:
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    if self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                        self._on_stale(self.study, self.storage.get_trial(t._trial_id))

    def work(self, objective, timeout: float | None) -> None:
        """Run queued trials until none is left here nor running elsewhere (or ``timeout`` passed);
        a full disk or a damaged store is one line naming the store file."""
        with faults_named(sqlite_path(self.url) or journal_path(self.url)):
            self._work(objective, timeout)

    def _work(self, objective, timeout: float | None) -> None:
        deadline, announced = (None if timeout is None else time.monotonic() + timeout), False
        while deadline is None or time.monotonic() < deadline:
            if self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                try:
                    self.study.optimize(objective, timeout=None if deadline is None else deadline - time.monotonic(),
                                        catch=(Exception,), callbacks=[lambda _s, t: self.run_here.append(t.number)])
                    return  # timed out
                except QueueEmpty:
                    continue
                except optuna.exceptions.UpdateFinishedTrialError:
                    self.log("tuning: a trial of this worker was declared dead meanwhile; its result is dropped")
                    continue
            running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not running:
                return
            if not announced:
                self.log(f"tuning: waiting for {len(running)} trial(s) running in other workers")
            announced = True
            time.sleep(0.25)
            self.fail_stale()  # a dead worker's trial is queued again

    def choose(self, objectives: tuple[str, ...], select: str):
        """One objective: the best trial (ties to the smaller K). Several: on Optuna's Pareto front
        (``best_trials``), an objective's best (``select=NAME``) or the smallest sum of per-objective
        ranks (``rank``; ties to the first objective)."""
        finished = [t for t in self.trials() if t.state.is_finished()]
        complete = [t for t in finished if t.state == TrialState.COMPLETE]
        if not complete:
            why = next((t.user_attrs.get("error") or t.user_attrs["reason"] for t in finished
                        if t.user_attrs.get("error") or t.user_attrs.get("reason")), "none finished")
            raise UserError(f"k=auto: no trial of study {self.name!r} completed "
                            f"({len(finished)} failed or pruned; first reason: {why})")
        sign = [1.0 if d == "maximize" else -1.0 for d in self.directions]
        front = self.study.best_trials if len(sign) > 1 else complete

        def by(i):
            return lambda t: (-sign[i] * t.values[i], trial_k(t) or 0, t.number)

        if len(sign) == 1 or select != "rank":
            return min(front, key=by(0 if len(sign) == 1 else objectives.index(select)))
        ranks = {t.number: sum(sorted(front, key=by(i)).index(t) for i in range(len(sign))) for t in front}
        return min(front, key=lambda t: (ranks[t.number], *by(0)(t)))
