"""The certification scenario: deploy, warm up, baseline, faults, recovery, evaluate, report.

Teardown happens on every path (Ctrl-C and SIGTERM included): the target and the load generator
are context managers, and evaluation reads Prometheus before the target goes away.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.config import Settings
from harness.drivers import chaos
from harness.drivers.locust import LocustRun, LocustSpec
from harness.drivers.process import CHAOS_LEDGER
from harness.drivers.prometheus import PrometheusClient
from harness.engine import _seed
from harness.engine._faults import fault_records, with_recoveries
from harness.engine._record import Outcome, build_record
from harness.engine._series import save_series
from harness.engine._validity import with_scrape_gaps
from harness.engine.lifecycle import register_run, unregister_run
from harness.engine.timeline import Timeline
from harness.model import (
    CAPABILITIES,
    Endpoints,
    FaultRecord,
    RunRecord,
    SloResult,
    Verdict,
    Window,
)
from harness.report import NullProgress, Progress, ProgressSink, compare_with_history
from harness.slo import (
    IndicatorKind,
    LiveIndicators,
    SloSpec,
    evaluate_slos,
    load_slo_file,
    unknown_metric_problems,
)
from harness.targets import (
    PROMETHEUS_JOBS,
    REFPLAT_ROLES,
    RESTART_LEDGER,
    CertifiableTarget,
    InClusterOptions,
    InClusterTarget,
    KindOptions,
    KindTarget,
    KubeOptions,
    KwokTarget,
    LocalTarget,
    LocalTopology,
    find_binaries,
    find_kubectl,
    kind_problem,
    observability_binaries,
)
from harness.util.errors import ConfigError, HarnessError, InfraError

__all__ = [
    "PROMETHEUS_JOBS",  # the local target's jobs (the pytest plugin waits for them)
    "CertifyRequest",
    "Interrupted",
    "certify",
    "make_target",
    "planned_duration_s",
    "preflight",
]

log = logging.getLogger(__name__)

HELD_SESSIONS = 2
LOCUST_MARGIN_S = 300
EXPERIMENT_ALLOWANCE_S = 120  # what one experiment may take, for Locust's own deadline
EXPERIMENT_ESTIMATE_S = 10  # what one usually takes, for the progress display


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM: stop, tear down, report what was done."""


@dataclass(frozen=True)
class CertifyRequest:
    """One certification run: settings, target and where its files go."""

    settings: Settings
    target: str
    repo_root: Path
    run_dir: Path
    run_id: str
    state_dir: Path
    sleep: Callable[[float], None] = time.sleep
    progress: bool = False  # show phase, time left and live indicator values on stderr
    kube: KubeOptions | None = None  # the cluster of ``--target kube`` (KWOK game servers)
    kind: KindOptions | None = None  # ``--target kind`` (None: the defaults of the repo)
    # ``--target kube --overlay kind``: the platform inside the cluster (then ``kube`` is None)
    incluster: InClusterOptions | None = None


def preflight(req: CertifyRequest) -> tuple[tuple[SloSpec, ...], list[Path]]:
    """Check every input before anything starts; raise ConfigError listing every problem."""
    if req.target == "kube" and req.kube is None and req.incluster is None:
        raise ConfigError(
            "--target kube needs a cluster: pass --kubeconfig PATH (and --context NAME), or "
            "start one with `harness cluster up --kwok --nodes 3`."
        )
    if req.target not in ("local", "kube", "kind"):
        raise ConfigError(
            f"--target {req.target}: no such target; use --target local, kube or kind."
        )
    problems: list[str] = []
    specs: tuple[SloSpec, ...] = ()
    try:
        specs = load_slo_file(req.repo_root / req.settings.slos)
    except ConfigError as exc:
        problems += exc.problems
    experiments = [req.repo_root / e for e in req.settings.experiments]
    for path in experiments:
        try:
            unknown = set(chaos.required_capabilities(chaos.validate_experiment(path)))
        except ConfigError as exc:
            problems += exc.problems
            continue
        if unknown - CAPABILITIES:
            problems.append(
                f"{path}: requires unknown capabilities {sorted(unknown - CAPABILITIES)}; "
                f"known: {', '.join(sorted(CAPABILITIES))}."
            )
    if not (req.repo_root / req.settings.load.locustfile).is_file():
        problems.append(f"{req.settings.load.locustfile}: no such locustfile.")
    if problems:
        raise ConfigError(problems)
    if req.incluster is not None:
        observability_binaries()  # the platform's own binaries run in the cluster
    elif req.target != "kind":
        find_binaries()
    elif (problem := kind_problem()) is not None:  # before anything starts: exit 2, no run dir
        raise InfraError(f"--target kind cannot run here: {problem}.")
    return specs, experiments


def certify(req: CertifyRequest) -> RunRecord:
    """Run the whole scenario and return its record; reports are the caller's."""
    specs, experiments = preflight(req)
    req.run_dir.mkdir(parents=True, exist_ok=True)
    timeline = Timeline(req.run_dir / "timeline.jsonl")
    started = time.time()
    outcome = Outcome()
    register_run(req.state_dir, req.run_id, req.run_dir, detached=False)
    progress: ProgressSink = (
        Progress(run_id=req.run_id, total_s=planned_duration_s(req.settings))
        if req.progress
        else NullProgress()
    )
    try:
        _run(req, specs, experiments, timeline=timeline, outcome=outcome, progress=progress)
    except ConfigError:
        raise  # an SLO query names a metric Prometheus does not have: exit 3, torn down
    except Interrupted:
        outcome.invalid.append("the run was interrupted (Ctrl-C or SIGTERM); teardown completed")
    except HarnessError as exc:
        outcome.invalid.append(str(exc))
    except Exception as exc:  # a defect of the harness: report it, the run decided nothing
        log.exception("internal error during run %s", req.run_id)
        outcome.invalid.append(f"internal error of the harness: {exc!r} (traceback in the log)")
    finally:
        progress.close()
        unregister_run(req.state_dir, req.run_id)
    phases = tuple(timeline.phases())

    def record() -> RunRecord:
        return build_record(
            run_id=req.run_id,
            profile=req.settings.name,
            target=req.target,
            run_dir=req.run_dir,
            started=started,
            phases=phases,
            outcome=outcome,
        )

    # Compared with the last runs of the same profile; a gate regression fails the run, so the
    # record is built again with them.
    outcome.regressions = compare_with_history(
        record(), req.run_dir.parent, req.settings.regression
    )
    return record()


def planned_duration_s(settings: Settings) -> float:
    """The timed phases' total, with a rough allowance for each experiment (progress display)."""
    p = settings.phases
    runs = p.rounds * len(settings.experiments)
    return p.warmup_s + p.baseline_s + runs * (EXPERIMENT_ESTIMATE_S + p.settle_s) + p.recovery_s


def make_target(req: CertifyRequest, topology: LocalTopology) -> CertifiableTarget:
    """The target of ``req.target``: local processes, the kube target (the platform beside a
    cluster with KWOK nodes, or inside an existing cluster), or kind."""
    run_id, run_dir = req.run_id, req.run_dir
    if req.target == "kube" and req.incluster is not None:
        return InClusterTarget(
            run_id=run_id, run_dir=run_dir, options=req.incluster, topology=topology
        )
    if req.target == "kube" and req.kube is not None:
        return KwokTarget(run_id=run_id, run_dir=run_dir, topology=topology, kube=req.kube)
    if req.target == "kind":
        options = req.kind or KindOptions(
            repo_root=req.repo_root, kubectl=find_kubectl(req.repo_root)
        )
        return KindTarget(run_id=run_id, run_dir=run_dir, options=options, topology=topology)
    return LocalTarget(run_id=run_id, run_dir=run_dir, topology=topology)


def _run(
    req: CertifyRequest,
    specs: tuple[SloSpec, ...],
    experiments: list[Path],
    *,
    timeline: Timeline,
    outcome: Outcome,
    progress: ProgressSink,
) -> None:
    topology = LocalTopology.from_settings(req.settings, repo_root=req.repo_root)
    target = make_target(req, topology)
    if isinstance(target, KwokTarget | InClusterTarget):  # a killed run's namespace is deleted
        register_run(
            req.state_dir, req.run_id, req.run_dir, detached=False, kube=target.run_namespace
        )
    with target:
        progress.start_phase("deploy", None)
        with timeline.phase("deploy"):
            endpoints = _deploy(req, target)
        with PrometheusClient(endpoints.prometheus_url, timeout_s=10) as prom:
            prom.wait_targets_up(
                list(target.prometheus_jobs), timeout_s=req.settings.timeouts.ready_s
            )
            _check_metrics(specs, prom)
            live = LiveIndicators(prom, specs, scrape_interval_s=prom.scrape_interval_s())
            before = _drive(
                req,
                target,
                endpoints=endpoints,
                experiments=experiments,
                timeline=timeline,
                outcome=outcome,
                display=_Display(progress, live),
            )
            progress.start_phase("evaluate", None)
            with timeline.phase("evaluate"):
                _evaluate(
                    req,
                    target,
                    endpoints=endpoints,
                    prom=prom,
                    specs=specs,
                    experiments=experiments,
                    before=before,
                    timeline=timeline,
                    outcome=outcome,
                )


def _deploy(req: CertifyRequest, target: CertifiableTarget) -> Endpoints:
    """Start the platform, seed a tenant, servers and held sessions; write ``target.json``."""
    s = req.settings
    return _seed.deploy_seeded(
        target,
        servers=s.topology.game_servers,
        held_sessions=HELD_SESSIONS,
        ready_timeout_s=s.timeouts.ready_s,
        probe_sample=s.probes.gameservers,
    )


# A master and its workers take seconds to connect: a run whose timed phases are shorter than
# this drives one Locust process unless the profile names ``load.workers``.
DISTRIBUTED_MIN_S = 20.0


def _timed_s(s: Settings) -> float:
    """Seconds of the run's timed phases (warm-up, baseline, settles, recovery)."""
    p = s.phases
    return p.warmup_s + p.baseline_s + p.settle_s * max(p.rounds - 1, 0) + p.recovery_s


def _drive(
    req: CertifyRequest,
    target: CertifiableTarget,
    *,
    endpoints: Endpoints,
    experiments: list[Path],
    timeline: Timeline,
    outcome: Outcome,
    display: _Display,
) -> list[str]:
    """Load through warm-up, baseline, the faults and recovery; return the sessions checked."""
    s = req.settings
    target_file = req.run_dir / "target.json"
    spec = LocustSpec(
        locustfile=req.repo_root / s.load.locustfile,
        host=endpoints.api_url,
        users=s.load.users,
        spawn_rate=s.load.spawn_rate,
        max_runtime_s=int(
            s.phases.warmup_s
            + s.phases.baseline_s
            + s.phases.rounds * len(experiments) * (s.phases.settle_s + EXPERIMENT_ALLOWANCE_S)
            + s.phases.recovery_s
        )
        + LOCUST_MARGIN_S,
        extra_args=("--harness-target-file", str(target_file), *s.load.args),
        workers=s.load.workers or (None if _timed_s(s) >= DISTRIBUTED_MIN_S else 1),
        metrics_host=target.locust_metrics[0] if target.locust_metrics else "127.0.0.1",
        metrics_port=target.locust_metrics[1] if target.locust_metrics else None,
    )
    env = {**os.environ, "HARNESS_TARGET_FILE": str(target_file)}
    with LocustRun(spec, out_dir=req.run_dir / "locust", env=env) as load:
        for name, popen, log_path in load.started():  # the ledger holds master and workers
            target.supervisor.adopt(name, popen, role="load", log_path=log_path)
        _hold(req, timeline, "warm-up", s.phases.warmup_s, load, display=display)
        _hold(req, timeline, "baseline", s.phases.baseline_s, load, display=display)
        before = _seed.active_sessions(endpoints)
        runs = [(n, path) for n in range(1, s.phases.rounds + 1) for path in experiments]
        for index, (round_no, path) in enumerate(runs):
            if index:
                _restart_killed(target, timeline, target_file)
            if index and s.phases.settle_s:
                _hold(req, timeline, f"settle#{index}", s.phases.settle_s, load, display=display)
            _run_experiment(
                path,
                target_file,
                req,
                caps=target.capabilities,
                gap_reasons=target.capability_gaps,
                timeline=timeline,
                outcome=outcome,
                phase=_numbered(f"fault:{path.stem}", round_no),
                display=display,
            )
            # Replicas the experiment restarted itself (a rolling restart, Redis brought back).
            for ledger in (CHAOS_LEDGER, RESTART_LEDGER):
                target.supervisor.adopt_ledger(req.run_dir / ledger)
        _hold(req, timeline, "recovery", s.phases.recovery_s, load, display=display)
        load.stop()
        if why := load.failure():  # a worker that died after the last check
            outcome.invalid.append(why)
        outcome.load = replace(load.summary(), by_phase=load.phase_summaries(timeline.phases()))
        if saturation := load.saturated():
            outcome.invalid.append(f"the load generator was saturated: {saturation}")
    return before


def _evaluate(
    req: CertifyRequest,
    target: CertifiableTarget,
    *,
    endpoints: Endpoints,
    prom: PrometheusClient,
    specs: tuple[SloSpec, ...],
    experiments: list[Path],
    before: list[str],
    timeline: Timeline,
    outcome: Outcome,
) -> None:
    """Judge the run: sessions kept, processes alive, every SLO over its windows."""
    share, lost = _seed.preserved_share(endpoints, before)
    if lost:
        outcome.errors.append(f"sessions lost over the faults: {', '.join(lost)}")
    _mark_killed(target, timeline)
    dead = target.supervisor.unexpected_exits()
    if dead:
        outcome.invalid.append(f"processes died without a fault: {', '.join(dead)}")
    req.sleep(2 * prom.scrape_interval_s() + 0.5)  # let the last samples land
    outcome.faults = fault_records(timeline, outcome.faults)
    skipped = {f.name: f.detail for f in outcome.faults if f.status is Verdict.SKIPPED}
    run_window = _run_window(timeline)
    outcome.slos = tuple(
        _skipped_slo(spec, skipped[spec.indicator.fault], run_window)
        for spec in specs
        if spec.indicator.fault in skipped
    ) + evaluate_slos(
        [spec for spec in specs if spec.indicator.fault not in skipped],
        prom=prom,
        run_window=run_window,
        phases=tuple(timeline.phases()),
        faults=[f for f in outcome.faults if f.status is not Verdict.SKIPPED],
        external={"sessions-preserved": share},
        scrape_interval_s=prom.scrape_interval_s(),
    )
    outcome.slos = with_scrape_gaps(outcome.slos, specs, prom)
    save_series(prom, run_window, req.run_dir / "series.json", step_s=prom.scrape_interval_s())
    recovery_slos = {
        s.name
        for s in specs
        if s.indicator.kind in (IndicatorKind.RECOVERY_TIME, IndicatorKind.MTTR)
    }
    outcome.faults = with_recoveries(outcome.faults, outcome.slos, recovery_slos)


def _skipped_slo(spec: SloSpec, reason: str, window: Window) -> SloResult:
    """An SLO about a fault that was not injected decides nothing: SKIPPED, with the reason."""
    return SloResult(
        name=spec.name,
        verdict=Verdict.SKIPPED,
        value=None,
        objective=spec.objective,
        comparator=str(spec.comparator),
        window=window,
        severity=str(spec.severity),
        detail=f"its fault '{spec.indicator.fault}' was {reason}",
    )


@dataclass(frozen=True)
class _Display:
    """The progress display and the live indicator values it shows."""

    progress: ProgressSink
    live: LiveIndicators

    def phase(self, name: str, seconds: float | None) -> None:
        self.progress.start_phase(name, seconds)

    def tick(self) -> None:
        if not isinstance(self.progress, NullProgress):
            self.progress.update(self.live.values(time.time()))


def _hold(
    req: CertifyRequest,
    timeline: Timeline,
    name: str,
    seconds: float,
    load: LocustRun,
    *,
    display: _Display,
) -> None:
    """Keep the load running through phase ``name`` for ``seconds``, checking Locust each second."""
    log.info("phase %s: %g s", name, seconds)
    display.phase(name, seconds)
    with timeline.phase(name):
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            req.sleep(min(1.0, left))
            load.check_running()
            display.tick()


def _check_metrics(specs: Sequence[SloSpec], prom: PrometheusClient) -> None:
    """Every metric an SLO query names must be known to Prometheus before the load starts."""
    problems = unknown_metric_problems(specs, prom.metric_names())
    if problems:
        raise ConfigError(problems, after_start=True)


def _run_experiment(
    path: Path,
    target_file: Path,
    req: CertifyRequest,
    *,
    caps: frozenset[str],
    gap_reasons: Mapping[str, str],
    timeline: Timeline,
    outcome: Outcome,
    phase: str,
    display: _Display,
) -> None:
    name = path.stem
    experiment = str(path.relative_to(req.repo_root))
    content = chaos.validate_experiment(path)
    missing = sorted(set(chaos.required_capabilities(content)) - caps)
    if missing:
        gaps = [f"{cap} ({gap_reasons[cap]})" if cap in gap_reasons else cap for cap in missing]
        detail = f"skipped: the target lacks {', '.join(gaps)}"
        log.warning("experiment %s %s", name, detail)
        outcome.faults += tuple(
            FaultRecord(fault, experiment, None, None, Verdict.SKIPPED, detail)
            for fault in chaos.declared_faults(content) or (name,)
        )
        return
    log.info("phase %s: running the experiment", phase)
    display.phase(phase, None)
    with timeline.phase(phase):
        result = chaos.run_experiment(
            path,
            config_vars={"harness_target_file": str(target_file)},
            journal_path=req.run_dir / "chaos" / f"{phase.removeprefix('fault:')}.journal.json",
        )
    outcome.faults += (
        FaultRecord(
            name=name,
            experiment=experiment,
            injected_at=None,
            recovered_at=None,
            status=result.verdict,
            detail=result.detail,
        ),
    )


def _numbered(name: str, count: int) -> str:
    """``name`` for the first, ``name#2`` for the second ... (phase names stay unique)."""
    return name if count == 1 else f"{name}#{count}"


def _restart_killed(target: CertifiableTarget, timeline: Timeline, target_file: Path) -> None:
    """Before the next experiment, restart the refplat processes earlier faults killed, as a
    service manager would, so that every round finds the whole platform; the experiments read
    the new pids from ``target.json``."""
    killed = {e.get("target") for e in timeline.faults() if e.get("event") == "injected"}
    endpoints = None
    for name, proc in list(target.supervisor.processes.items()):
        if name in killed and proc.role in REFPLAT_ROLES and not proc.running():
            log.info("restarting %s, killed by a fault", name)
            endpoints = target.restart(name)
            timeline.append({"kind": "restart", "name": name})
    if endpoints is not None:
        tenant = Endpoints.read(target_file).tenant_token_file
        replace(endpoints, tenant_token_file=tenant).write(target_file)


def _mark_killed(target: CertifiableTarget, timeline: Timeline) -> None:
    """Processes a fault killed on purpose are not unexpected deaths."""
    killed = {e.get("target") for e in timeline.faults() if e.get("event") == "injected"}
    for name, proc in target.supervisor.processes.items():
        if name in killed:
            proc.expected_exit = True


def _run_window(timeline: Timeline) -> Window:
    phases = {p.name: p for p in timeline.phases()}
    start = (
        phases["warm-up"].start if "warm-up" in phases else min(p.start for p in phases.values())
    )
    end = phases["recovery"].end if "recovery" in phases else max(p.end for p in phases.values())
    return Window("run", start, end)
