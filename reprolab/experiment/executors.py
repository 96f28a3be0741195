"""Where the trainings of ``reprolab run`` execute: in this process one after another, or as Ray tasks.

A run is a set of independent trainings (sweep candidates × seeds, :mod:`reprolab.experiment.protocol`) whose
finished checkpoints the runner then loads, evaluates and appends rows for. An executor decides when and where
each training happens; the runner asks it for a checkpoint (:meth:`wait`) right before it would train one itself.

* :class:`SerialExecutor` (``--executor serial``, the default): nothing ahead of time; the runner trains each
  checkpoint in-process when it first needs it — the kit's behaviour before executors existed.
* :class:`RayExecutor` (``--executor ray [--address ADDR]``, ``pip install reprolab[ray]``): :meth:`schedule`
  submits every training the protocol does not have to wait for as one Ray task with its resource request
  (``cpus_per_task``, ``gpus_per_task``; a GPU each when the cluster has GPUs). The runner calls it before the
  sweeps (every candidate at the first seed, and every unswept method at every seed) and the protocol after each
  choice (that method's chosen params at the other seeds) — so the scheduler waits only where a choice is needed.
  A task builds the run on its worker once (encoder and data, cached per worker process) and trains into the
  run folder's checkpoint directory with ``fit(resume=True)``; it writes no rows: only the driver appends to
  ``results.jsonl``, so there is one writer as before. A worker that dies is retried by Ray (``max_retries``)
  and resumes from its last checkpoint. Checkpoints and rows are the same whichever executor wrote them, so a
  run started serially can be finished on Ray and vice versa. On a cluster the run folder must be on a shared
  filesystem. Evaluation runs on the worker too: after training, the task writes the method's outputs on the
  sets its rows need into the run's feature cache (``OUT/features``), and the driver turns them into rows.
* ``torchrun`` (data-parallel, :mod:`reprolab.distributed`): every rank runs the serial executor; ranks other
  than 0 keep their rows in memory (:class:`RankResults`) so that every rank makes the same resume decisions.

Ray is imported only by :class:`RayExecutor`: never on the serial path.
"""

from __future__ import annotations

from pathlib import Path

from reprolab.checkpoint import checkpoint_exists, load_checkpoint
from reprolab.errors import ReprolabError
from reprolab.experiment.log import log
from reprolab.experiment.protocol import candidates, resolved, stored_val
from reprolab.experiment.results import ResultsDB, config_hash, utc_now, validate_row

NOT_TRAINED = ("zeroshot", "linear_probe", "residual_reprogrammer", "wise_ft")  # fitted/loaded on the driver


class SerialExecutor:
    """Train in this process when the runner first needs a checkpoint (see the module docstring)."""

    name = "serial"

    def schedule(self, runner) -> None:
        """Start the trainings that need no choice first; nothing to do when training happens on demand."""

    def wait(self, runner, spec, seed: int, ckpt: Path) -> None:
        """Make ``ckpt`` finished if another process trains it; here the runner trains it itself."""

    def close(self) -> None:
        pass


def finished(ckpt: Path) -> bool:
    """True when ``ckpt`` holds a checkpoint of the last step of its training."""
    if not checkpoint_exists(ckpt):
        return False
    meta = load_checkpoint(ckpt)[1]
    return meta.get("step", 0) >= meta.get("total", 0)


def needed(runner, spec, seed: int) -> bool:
    """Does a row of ``spec`` (or of a method that reuses its checkpoint as ``base``) still have to be written?"""
    if not runner.resume:
        return True
    users = [spec] + [s for s in runner.cfg.methods if s.base == spec.name]
    return any(runner.expected(u) - runner.present(u, runner.spec_hash(u), seed) for u in users)


def trainings(runner) -> list[tuple]:
    """``(spec, seed)`` of every training the run needs now: a swept method's candidates at the first seed
    (while it is not chosen), every other trained method at every seed. A candidate's spec keeps ``sweep``
    empty and its values in ``params`` (:func:`~reprolab.experiment.protocol.resolved`)."""
    first, jobs = runner.cfg.seeds[0], []
    for spec in runner.cfg.methods:
        if spec.name in NOT_TRAINED:
            continue
        if spec.sweep and spec.name in runner.chosen:  # chosen while the other sweeps are still running
            spec = resolved(spec, runner.chosen[spec.name])
        if spec.sweep:
            for values in candidates(spec):
                cand = resolved(spec, values)
                have = stored_val(runner, spec.name, runner.spec_hash(cand), first) if runner.resume else {}
                if have.get(None) is None:
                    jobs.append((cand, first))
        else:
            jobs += [(spec, seed) for seed in runner.cfg.seeds if needed(runner, spec, seed)]
    return jobs


# ----- Ray ----------------------------------------------------------------------------------------------------------
_WORKER_RUNS: dict = {}  # (run folder, config hash) → a loaded Runner, one per Ray worker process


def train_on_worker(runner_cls, cfg, out: str, run_state: dict, spec, seed: int, callback=None) -> str:
    """The body of a Ray task: train (or resume, or just load) the checkpoint of ``spec`` at ``seed``.

    ``runner_cls``: :class:`reprolab.experiment.runner.Runner` (passed in: the runner imports this module);
    ``run_state``: the driver's ``specs`` (bases resolved to the chosen params), ``swept`` (checkpoint names) and
    ``candidate`` (a sweep candidate, scored on validation only). The encoder and data are loaded once per worker
    process and run folder."""
    from reprolab.evaluation.evaluate import collect

    key = (out, config_hash({k: v for k, v in cfg.to_dict().items() if k != "methods"}))
    if key not in _WORKER_RUNS:
        _WORKER_RUNS[key] = runner_cls(cfg, out, resume=True)
        _WORKER_RUNS[key].load()
    runner = _WORKER_RUNS[key]
    runner.cfg, runner.callback = cfg, callback
    runner.specs, runner.swept = dict(run_state["specs"]), set(run_state["swept"])
    method = runner.trained(spec, seed)
    # evaluation on the worker: the outputs the driver's rows need go into the run's feature cache, so the driver
    # only turns cached logits into rows (a candidate: the validation set; a chosen run: the test sets too)
    sets = [runner.val_set] if runner.val_set is not None and seed == cfg.seeds[0] else []
    sets += [] if run_state.get("candidate") else runner.all_sets
    collect(method, sets, runner.cache, cfg.eval_batch_size, progress=False)
    return str(runner.ckpt_dir(spec, seed))


class RayExecutor:
    """Every training a Ray task (see the module docstring).

    ``address``: a running cluster (``ray://…`` or ``auto``); None starts Ray on this machine with ``num_cpus``
    (None: all of them). ``callback(step, method, record)`` is passed to :func:`reprolab.training.fit` on the
    workers (tests use it to kill a worker mid-training).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        cpus_per_task: float = 1,
        gpus_per_task: float | None = None,
        max_retries: int = 3,
        callback=None,
        **init_kwargs,
    ):
        try:
            import ray
        except ImportError:
            raise ReprolabError("--executor ray needs Ray: pip install 'reprolab[ray]' (or pip install ray)") from None
        self.ray, self.started = ray, not ray.is_initialized()
        if self.started:
            local = dict(num_cpus=num_cpus, include_dashboard=False) if address is None else {}
            ray.init(address=address, **local, **init_kwargs)
        if gpus_per_task is None:
            gpus_per_task = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        self.task = ray.remote(train_on_worker).options(
            num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=max_retries
        )
        self.callback, self.futures, self.max_retries = callback, {}, max_retries
        log(
            f"ray: {ray.cluster_resources().get('CPU', 0):g} CPUs, {ray.cluster_resources().get('GPU', 0):g} GPUs; "
            f"{cpus_per_task:g} CPU + {gpus_per_task:g} GPU per training"
        )

    def submit(self, runner, spec, seed: int, ckpt: Path) -> None:
        candidate = spec.name in runner.swept and spec.name not in runner.chosen
        state = dict(specs=runner.specs, swept=runner.swept, candidate=candidate)
        args = (type(runner), runner.cfg, str(runner.out), state, spec, seed, self.callback)
        self.futures[ckpt] = self.task.remote(*args)
        log(f"ray: submitted {spec.name} seed {seed} → {ckpt.name}")

    def schedule(self, runner) -> None:
        for spec, seed in trainings(runner):
            ckpt = runner.ckpt_dir(spec, seed)
            if ckpt in self.futures or ((runner.resume or ckpt in runner.fresh) and finished(ckpt)):
                continue
            if not runner.resume:  # --no-resume: train from scratch (a retried task then resumes its own steps)
                for f in ckpt.glob("checkpoint.*"):
                    f.unlink()
            self.submit(runner, spec, seed, ckpt)

    def wait(self, runner, spec, seed: int, ckpt: Path) -> None:
        if spec.name in NOT_TRAINED:
            return
        if ckpt not in self.futures:
            if (runner.resume or ckpt in runner.fresh) and finished(ckpt):
                return
            self.submit(runner, spec, seed, ckpt)
        try:
            self.ray.get(self.futures.pop(ckpt))
        except self.ray.exceptions.RayTaskError as exc:  # the worker's own error (e.g. a NaN loss), as one line
            raise exc.as_instanceof_cause() from None
        except self.ray.exceptions.RayError as exc:  # its workers kept dying: retries used up
            raise ReprolabError(
                f"{spec.name} seed {seed}: its Ray task failed after {self.max_retries} retries "
                f"({type(exc).__name__}); run the same command again to resume from {ckpt}"
            ) from None
        runner.fresh.add(ckpt)

    def close(self) -> None:
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()


def make_executor(name: str = "serial", address: str | None = None):
    """The executor of ``reprolab run --executor NAME [--address ADDR]``."""
    if name == "serial":
        if address:
            raise ReprolabError("--address is for --executor ray; add --executor ray or drop --address")
        return SerialExecutor()
    if name == "ray":
        return RayExecutor(address=address)
    raise ReprolabError(f"unknown executor {name!r}; use serial or ray")


# ----- torchrun -----------------------------------------------------------------------------------------------------
class RankResults(ResultsDB):
    """The results of a data-parallel rank other than 0: the file as it was at the start (rank 0 writes it),
    plus in memory the rows this rank computed too — so its resume decisions equal rank 0's."""

    def __init__(self, path):
        super().__init__(path)
        self._rows = super().rows()

    def append_many(self, rows) -> list[dict]:
        now = utc_now()
        clean = [validate_row({"created": now, **r}) for r in rows]
        self._rows += clean
        return clean

    def rows(self) -> list[dict]:
        return list(self._rows)


def results_db(path):
    """rank 0 (or a single process): the results file; another torchrun rank: :class:`RankResults`."""
    from reprolab import distributed

    return ResultsDB(path) if distributed.is_main() else RankResults(path)
