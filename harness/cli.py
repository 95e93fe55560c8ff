"""The ``harness`` command: certify, up, down, report, history.

Exit codes: 0 PASS, 1 an SLO failed or an experiment deviated, 2 harness or infrastructure
error (INVALID), 3 usage or configuration error.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from harness.config import Settings, load_settings
from harness.engine import cluster as kube_cluster
from harness.engine.certify import CertifyRequest, Interrupted, certify
from harness.engine.lifecycle import bring_down, bring_up, reap_stale_runs
from harness.model import ExitCode, RunRecord
from harness.report import (
    history_table,
    load_run_record,
    render_table,
    write_allure_results,
    write_html,
    write_junit,
    write_run_json,
)
from harness.targets import (
    KUBE_OVERLAYS,
    TARGETS,
    InClusterOptions,
    KindOptions,
    KubeOptions,
    LocalTopology,
    check_kube_flags,
    find_kubectl,
)
from harness.util.errors import ConfigError, HarnessError

log = logging.getLogger("harness")
CLUSTER_KUBECONFIG = Path("cluster") / "kubeconfig"  # under .harness: `harness cluster up`'s
UP_TARGETS = ("local", "kube")  # what `harness up` brings up


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Resilience and validation harness for game-server hosting platforms.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--profile", default="smoke", help="profile name or file (default: smoke)")
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override one setting, e.g. topology.controller_replicas=1",
        )
        p.add_argument(
            "--reports-dir",
            type=Path,
            default=Path("reports"),
            help="where run directories go (default: reports)",
        )

    def target(p: argparse.ArgumentParser, choices: tuple[str, ...]) -> None:
        p.add_argument("--target", choices=choices, default="local")
        p.add_argument(
            "--kubeconfig", type=Path, default=None, help="--target kube: the cluster (not kind)"
        )
        p.add_argument("--context", default=None, help="--target kube: a context of the kubeconfig")
        p.add_argument(
            "--allow-context",
            default=None,
            metavar="NAME",
            help="use NAME though not a test cluster",
        )
        p.add_argument(
            "--overlay",
            choices=KUBE_OVERLAYS,
            default=None,
            help="--target kube: kwok (default: the platform beside the cluster, game servers "
            "on KWOK nodes) or kind (the platform inside the cluster, reached by port-forward)",
        )
        p.add_argument(
            "--image",
            default=None,
            metavar="REF",
            help="--target kube --overlay kind: the refplat image the cluster pulls "
            "(default: refplat:dev, present only where it was loaded)",
        )

    c = sub.add_parser("certify", help="deploy, load, inject faults, judge the SLOs, report")
    target(c, TARGETS)
    common(c)
    u = sub.add_parser("up", help="deploy and seed a target (local or kube) and leave it running")
    target(u, UP_TARGETS)  # kind: certify only
    common(u)
    sub.add_parser("down", help="tear down what `harness up` started (and what crashed runs left)")
    h = sub.add_parser("history", help="a trend table of the last runs of a profile")
    h.add_argument("--profile", default=None, help="profile name (default: the newest run's)")
    h.add_argument("--reports-dir", type=Path, default=Path("reports"), help="(default: reports)")
    h.add_argument("--last", type=int, default=10, metavar="N", help="runs shown (default: 10)")
    r = sub.add_parser("report", help="render a run's Allure results and HTML page from run.json")
    r.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory: reports/<id>")
    r.add_argument(
        "--allure-results",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the Allure results go (default: RUN_DIR/allure-results)",
    )
    k = sub.add_parser("cluster", help="a local Kubernetes control plane with KWOK nodes")
    k.add_argument("action", choices=("up", "down", "status"))
    k.add_argument("--kwok", action="store_true", help="KWOK nodes (the only kind here; default)")
    k.add_argument("--nodes", type=int, default=3, metavar="N", help="KWOK nodes (default: 3)")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return ExitCode.USAGE if exc.code else ExitCode.PASS
    _configure_logging(verbose=args.verbose)
    state_dir = Path(".harness")
    _install_signal_handlers()
    try:
        if args.command == "history":
            return _history(args)
        if args.command == "report":
            return _report(args.run_dir, allure_results=args.allure_results)
        if args.command == "cluster":
            return _cluster(args.action, nodes=args.nodes, state_dir=state_dir)
        if args.command == "down":  # crashed runs too: their processes count in the total
            stopped = bring_down(state_dir)
            print(f"harness down: stopped {len(stopped)} processes")
            return ExitCode.PASS
        _refuse_misplaced_flags(args)
        reap_stale_runs(state_dir)
        settings = _settings(args)
        run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)
        run_dir = (args.reports_dir / run_id).resolve()
        if args.command == "up":
            return _up(args, settings, run_id=run_id, run_dir=run_dir, state_dir=state_dir)
        return _certify(args, settings, run_id=run_id, run_dir=run_dir, state_dir=state_dir)
    except ConfigError as exc:
        print("harness: configuration error:\n  " + "\n  ".join(exc.problems), file=sys.stderr)
        print(
            "The target was started to check this and is torn down; no load or fault ran."
            if exc.after_start
            else "Nothing was started.",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    except HarnessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return ExitCode.INFRA
    except Interrupted:
        print("harness: interrupted; everything started was stopped.", file=sys.stderr)
        return ExitCode.INFRA


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        args.profile, repo_root=Path.cwd(), env=dict(os.environ), overrides=list(args.overrides)
    )


def _certify(
    args: argparse.Namespace, settings: Settings, *, run_id: str, run_dir: Path, state_dir: Path
) -> int:
    request = CertifyRequest(
        settings=settings,
        target=args.target,
        repo_root=Path.cwd(),
        run_dir=run_dir,
        run_id=run_id,
        state_dir=state_dir,
        progress=True,
        kube=_kube_options(args, state_dir) if _beside(args) else None,
        kind=_kind_options(args) if args.target == "kind" else None,
        incluster=_incluster_options(args) if _inside(args) else None,
    )
    log.info(
        "run %s: profile %s on target %s; files in %s", run_id, settings.name, args.target, run_dir
    )
    record = certify(request)
    _write_reports(record, run_dir)
    print(render_table(record))
    print(f"run.json: {run_dir / 'run.json'}")
    print(f"report:   {run_dir / 'report.html'}")
    print(f"allure:   {run_dir / 'allure-results'} (HTML: make report)")
    return int(record.exit_code)


def _beside(args: argparse.Namespace) -> bool:
    """``--target kube`` with the kwok overlay: the platform's processes beside the cluster."""
    return bool(args.target == "kube" and args.overlay in (None, "kwok"))


def _inside(args: argparse.Namespace) -> bool:
    """``--target kube --overlay kind``: the platform in Pods of an existing cluster."""
    return bool(args.target == "kube" and args.overlay == "kind")


def _incluster_options(args: argparse.Namespace) -> InClusterOptions:
    """``--target kube --overlay kind``: the cluster of ``--kubeconfig``/``--context`` (default:
    kubectl's: $KUBECONFIG or ~/.kube/config, its current context), never the `harness cluster
    up` one (its KWOK nodes run no containers). The cluster must be named: the target deploys
    into it."""
    if args.kubeconfig is None and args.context is None:
        raise ConfigError(
            "--target kube --overlay kind deploys the platform into an existing cluster; name "
            "it with --context NAME (and --kubeconfig PATH when not $KUBECONFIG or "
            "~/.kube/config). It must be marked as a test cluster (`kubectl create configmap "
            "gsharness-test-cluster -n kube-system`) or named with --allow-context NAME."
        )
    check_kube_flags(args.kubeconfig, args.context)
    return InClusterOptions(
        repo_root=Path.cwd(),
        kubectl=find_kubectl(Path.cwd()),
        kubeconfig=args.kubeconfig,
        context=args.context,
        allow_context=args.allow_context,
        image=args.image,
    )


def _refuse_misplaced_flags(args: argparse.Namespace) -> None:
    """``--overlay`` and ``--image`` belong to ``--target kube`` (``--image`` to its kind
    overlay); ``harness up`` keeps the platform beside the cluster only."""
    if args.overlay is not None and args.target != "kube":
        raise ConfigError(
            f"--overlay {args.overlay}: only for --target kube (--target {args.target} "
            "chooses its own). Remove the flag, or use --target kube."
        )
    if args.image is not None and not _inside(args):
        raise ConfigError(
            f"--image {args.image}: only for --target kube --overlay kind, where the cluster "
            "pulls the platform's image (kind loads the one it builds; the kwok overlay runs "
            "the platform on this host)."
        )
    if args.command == "up" and _inside(args):
        raise ConfigError(
            "harness up --target kube --overlay kind: not offered; the tunnels to the platform "
            "end with the command. Use `harness certify --target kube --overlay kind`, or "
            "`harness up --target kube` (the kwok overlay)."
        )


def _kube_options(args: argparse.Namespace, state_dir: Path) -> KubeOptions:
    """``--target kube``: the kwok overlay on the named cluster (default: `harness cluster up`)."""
    kubeconfig: Path | None = args.kubeconfig
    if kubeconfig is None and args.context is None and (state_dir / CLUSTER_KUBECONFIG).is_file():
        kubeconfig = (state_dir / CLUSTER_KUBECONFIG).resolve()
    check_kube_flags(kubeconfig, args.context)
    return KubeOptions(
        manifests_dir=Path.cwd() / "platform" / "manifests",
        kubectl=find_kubectl(Path.cwd()),
        overlay="kwok",
        kubeconfig=kubeconfig,
        context=args.context,
        allow_context=args.allow_context,
    )


def _kind_options(args: argparse.Namespace) -> KindOptions:
    """``--target kind``: the kind overlay in the kind cluster the target creates (or reuses)."""
    given = [
        flag
        for flag, value in (
            ("--kubeconfig", args.kubeconfig),
            ("--context", args.context),
            ("--allow-context", args.allow_context),
        )
        if value is not None
    ]
    if given:
        raise ConfigError(
            f"{', '.join(given)}: only for --target kube; --target kind uses the kind cluster it "
            "creates or reuses (gsharness, fixtures/kind/cluster.yaml). Remove the flag, or use "
            "--target kube for a cluster of yours."
        )
    return KindOptions(repo_root=Path.cwd(), kubectl=find_kubectl(Path.cwd()))


def _write_reports(record: RunRecord, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_run_json(record, run_dir / "run.json")
    write_junit(record, run_dir / "junit.xml")
    write_html(record, series_path=run_dir / "series.json", out=run_dir / "report.html")
    try:  # rendered from run.json read back; a failure here must not change the run's verdict
        write_allure_results(run_dir)
    except HarnessError as exc:
        log.warning("allure results not written: %s; try `harness report %s`", exc, run_dir)


def _report(run_dir: Path, *, allure_results: Path | None) -> int:
    """Render the reports of an existing run again from its run.json; starts nothing."""
    if not (run_dir / "run.json").is_file():
        raise ConfigError(
            f"{run_dir}: no run.json here; pass a run directory such as reports/<run-id> "
            "written by `harness certify`."
        )
    record = load_run_record(run_dir / "run.json")
    html = write_html(record, series_path=run_dir / "series.json", out=run_dir / "report.html")
    results = write_allure_results(run_dir, out=allure_results)
    print(f"report:         {html}")
    print(f"allure results: {results}")
    return ExitCode.PASS


def _history(args: argparse.Namespace) -> int:
    """Print the trend of a profile's last runs; reads run.json files, starts nothing."""
    try:
        print(history_table(args.reports_dir, profile=args.profile, last=args.last), end="")
    except ConfigError as exc:
        print("harness history: " + "\n  ".join(exc.problems), file=sys.stderr)
        return ExitCode.USAGE
    return ExitCode.PASS


def _up(
    args: argparse.Namespace, settings: Settings, *, run_id: str, run_dir: Path, state_dir: Path
) -> int:
    kube = _kube_options(args, state_dir) if _beside(args) else None
    topology = LocalTopology.from_settings(settings, repo_root=Path.cwd())
    endpoints = bring_up(
        run_id=run_id,
        run_dir=run_dir,
        state_dir=state_dir,
        topology=topology,
        servers=settings.topology.game_servers,
        kube=kube,
    )
    experiment = "k8s-gameserver-pod-terminate" if kube else "controller-leader-kill"
    print(f"harness up: run {run_id} is running")
    print(f"  API:        {endpoints.api_url}")
    print(f"  Prometheus: {endpoints.prometheus_url}")
    if namespace := endpoints.extra.get("kube_namespace"):
        print(f"  namespace:  {namespace} (kubeconfig {endpoints.extra.get('kube_kubeconfig')})")
    print(f"  target:     {state_dir / 'target.json'} -> {run_dir / 'target.json'}")
    print(f"  try:        chaos run experiments/{experiment}.yaml")
    print("  stop with:  harness down")
    return ExitCode.PASS


def _cluster(action: str, *, nodes: int, state_dir: Path) -> int:
    """``harness cluster up|down|status`` (see harness.engine.cluster)."""
    if action == "up":
        up = kube_cluster.cluster_up(state_dir=state_dir, repo_root=Path.cwd(), nodes=nodes)
        print(kube_cluster.describe_up(up))
        return ExitCode.PASS
    if action == "down":
        stopped = kube_cluster.cluster_down(state_dir=state_dir)
        what = f"stopped {', '.join(stopped)}" if stopped else "nothing was running"
        print(f"harness cluster down: {what}")
        return ExitCode.PASS
    state, processes = kube_cluster.cluster_status(state_dir=state_dir)
    print(kube_cluster.describe_status(state, processes))
    return ExitCode.PASS if kube_cluster.status_is_healthy(state, processes) else ExitCode.INFRA


def _configure_logging(*, verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("urllib3", "chaostoolkit", "prometheus_api_client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _install_signal_handlers() -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut teardown
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
