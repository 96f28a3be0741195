"""The ``reprolab`` command line: run a config, rebuild a report, check the machine, fetch for offline use,
benchmark.

    reprolab run CONFIG [--out DIR] [--set key=value ...] [--no-resume] [--executor serial|ray [--address ADDR]]
    torchrun --nproc_per_node=N -m reprolab run CONFIG ...      (data-parallel: reprolab.distributed)
    reprolab report DIR
    reprolab doctor
    reprolab fetch [--clip] [--data course|none|NAME,...] --to DIR [--verify]
    reprolab bench [--out FILE.json]
    reprolab precompute --course --to DIR [--encoder clip] [--notebooks 01,02] [--full]

Errors the kit raises on bad input (:class:`~reprolab.errors.ReprolabError`) are printed as one line,
``reprolab: error: ...``, with exit status 2 and no traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reprolab.errors import ReprolabError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reprolab",
        description="Model reprogramming vs fine-tuning of text-image "
        "encoders (Geng & Chen, arXiv 2403.10800): run, report, check.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    r = sub.add_parser("run", help="train and evaluate the methods of a YAML config")
    r.add_argument("config", help="YAML config, e.g. configs/quickstart.yaml")
    r.add_argument(
        "--out", default=None, help="output folder (default: runs/<config name>-<encoder id>, one per encoder)"
    )
    r.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, dotted (e.g. methods.reprogrammer.train.steps=50); repeatable",
    )
    r.add_argument(
        "--no-resume",
        action="store_true",
        help="retrain from scratch and re-evaluate (rows are still appended, never rewritten)",
    )
    r.add_argument(
        "--executor",
        choices=["serial", "ray"],
        default="serial",
        help="where the trainings run: one after another here (default), or as Ray tasks (pip install reprolab[ray])",
    )
    r.add_argument(
        "--address", default=None, help="with --executor ray: a running Ray cluster (default: start one here)"
    )
    rep = sub.add_parser("report", help="rebuild DIR/report.html from DIR/results.jsonl")
    rep.add_argument("dir", help="a run folder holding results.jsonl")
    sub.add_parser("doctor", help="print what this machine has: devices, encoders, datasets")
    f = sub.add_parser("fetch", help="download CLIP weights and the course data into one folder, for offline use")
    f.add_argument("--to", required=True, metavar="DIR", help="the folder to fill (copy it to machines offline)")
    f.add_argument("--clip", action="store_true", help="also fetch OpenAI's CLIP ViT-B/32 weights (~600 MB)")
    f.add_argument(
        "--data", default="course", help="'course' (every set the quickstart and notebooks use), 'none', or a,b,c"
    )
    f.add_argument("--verify", action="store_true", help="only re-hash DIR's files against DIR/manifest.json")
    _add_precompute(sub)
    sub.add_parser(
        "bench", help="time the encoders and methods on this machine; options: see reprolab bench -h", add_help=False
    )
    return p


def _run(args) -> int:
    from reprolab import distributed
    from reprolab.experiment.config import load_config
    from reprolab.experiment.executors import make_executor
    from reprolab.experiment.run_folder import default_out
    from reprolab.experiment.runner import run

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else default_out(args.config, cfg)  # keyed by the encoder: never mixed
    if distributed.init_from_env() and args.executor != "serial":  # launched by torchrun
        raise ReprolabError("torchrun runs each training data-parallel; use --executor serial (the default) with it")
    executor = make_executor(args.executor, args.address)
    try:
        report = run(cfg, out, resume=not args.no_resume, executor=executor)
    finally:
        executor.close()
    if distributed.is_main():
        print(f"report: {Path(report).resolve()}")
    return 0


def _report(args) -> int:
    from reprolab.experiment.report import build_report

    print(f"report: {build_report(args.dir).resolve()}")
    return 0


def _doctor(args) -> int:
    from reprolab.doctor import main as doctor_main

    return doctor_main()


def _fetch(args) -> int:
    from reprolab.fetch import main as fetch_main

    return fetch_main(args.to, clip=args.clip, data=args.data, verify=args.verify)


# ----- precompute (issue 16): a teacher trains the course once, students load it ---------------------------------
def _add_precompute(sub) -> None:
    pc = sub.add_parser("precompute", help="run the course once into DIR; students set REPROLAB_PRECOMPUTED=DIR")
    pc.add_argument("--course", action="store_true", required=True, help="the course notebooks (the only mode)")
    pc.add_argument("--to", required=True, metavar="DIR", help="folder for checkpoints, cached features and runs")
    pc.add_argument("--encoder", default="clip", help="encoder name the students will use (default: clip)")
    pc.add_argument("--notebooks", default="", help="comma-separated NN prefixes, e.g. 01,02 (default: all)")
    pc.add_argument("--full", action="store_true", help="FAST = False (the paper's settings; needs a GPU)")


def _precompute(args) -> int:
    from reprolab.course.precompute import precompute

    only = [n.strip().zfill(2) for n in args.notebooks.split(",") if n.strip()]
    precompute(args.to, encoder=args.encoder, fast=not args.full, only=only or None)
    return 0


def _bench(args) -> int:
    try:
        from reprolab.bench.suite import main as bench_main
    except ImportError as exc:
        raise ReprolabError(
            f"reprolab bench is not available in this install ({exc}); "
            "update reprolab or run the benchmark notebook instead"
        ) from None
    return int(bench_main(list(args.rest)) or 0)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # everything after "bench" belongs to reprolab.bench.suite's own parser
        args = argparse.Namespace(command="bench", rest=argv[1:])
    else:
        args = _parser().parse_args(argv)
    handlers = {"run": _run, "report": _report, "doctor": _doctor, "fetch": _fetch, "bench": _bench}
    handler = {**handlers, "precompute": _precompute}[args.command]
    try:
        return handler(args)
    except ReprolabError as exc:
        print(f"reprolab: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("reprolab: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
