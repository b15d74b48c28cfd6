"""``trackrank``: the command line of the cold-start path (index the catalog, recommend, serve).

The workflow's stages run under Snakemake (``snakemake --until <rule>`` runs one); this is what a
user runs by hand on a trained system. The one argparse layer of the package.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from trackrank.coldstart.settings import DECODE_WAIT_S, INDEX_KINDS, MAX_DECODES, MAX_DURATION_S, MAX_UPLOAD_MB
from trackrank.logs import log_to

log = logging.getLogger("trackrank")


def _index(args: argparse.Namespace) -> int:
    from trackrank.coldstart.index import build_index
    from trackrank.coldstart.index_identity import trained_embedding
    from trackrank.data.feature_cache import cache_in_folder

    if args.action == "add":
        return _index_add(args)
    if args.action == "remove":
        from trackrank.coldstart.grow import remove_tracks

        removed = remove_tracks(args.index, args.track_ids)
        print(f"removed {removed} track{'' if removed == 1 else 's'} from {args.index}")
        return 0
    if not args.model:
        raise SystemExit("trackrank index: --model is required to build an index (or: index add, index remove)")
    out = Path(args.out) if args.out else Path("results/index") / trained_embedding(args.model)
    build_index(
        model=args.model,
        cache=cache_in_folder(args.cache_dir),
        tracks=args.tracks,
        catalog_dir=args.catalog_dir,
        out_tracks=out / "tracks.parquet",
        out_vectors=out / "vectors.faiss",
        out_identity=out / "identity.json",
        tags=args.tags if Path(args.tags).is_file() else None,
        taxonomy=args.taxonomy if Path(args.taxonomy).is_file() else None,
        n_patches=args.n_patches,
        kind=args.kind,
        device=args.device,
    )
    print(out)
    return 0


def _checked_files(paths: list[str]) -> tuple[list[str], list[dict]]:
    """(the paths that can be audio files, one {file, reason} per other): bad paths are refused before
    a model loads."""
    from trackrank.coldstart.recommend import check_query_file
    from trackrank.errors import QueryError

    usable, failed = [], []
    for path in paths:
        try:
            usable.append(str(check_query_file(path)))
        except QueryError as error:
            failed.append({"file": path, "reason": str(error)})
    return usable, failed


def _index_add(args: argparse.Namespace) -> int:
    from trackrank.coldstart.grow import add_tracks

    usable, failed = _checked_files(args.files)
    added = []
    if usable:
        added, more = add_tracks(
            args.index,
            usable,
            ids_csv=args.ids,
            model=args.model,
            device=args.device,
            max_duration_s=args.max_duration,
        )
        failed += more
    for failure in failed:
        print(f"trackrank index add: {failure['reason']}", file=sys.stderr)
    print(
        f"added {len(added)} track{'' if len(added) == 1 else 's'} to {args.index}"
        + (f": {', '.join(added)}" if added else "")
    )
    return 1 if failed else 0


def _recommend(args: argparse.Namespace) -> int:
    from trackrank.coldstart.filters import Filters
    from trackrank.coldstart.recommend import Recommender, answer
    from trackrank.errors import QueryError
    from trackrank.learn.embedding import choose_device

    answers = []
    usable, failed = _checked_files(args.audio)
    for failure in failed:
        print(f"trackrank recommend: {failure['reason']}", file=sys.stderr)
    if not usable:
        if args.json:
            json.dump({"results": [], "errors": failed}, sys.stdout, indent=2)
            print()
        return 1
    choose_device(args.device)  # a device this machine lacks is refused before the model loads, too
    recommender = Recommender(
        args.index,
        model=args.model,
        device=args.device,
        n_patches=args.n_patches,
        max_duration_s=args.max_duration,
        tagger=_tagger(args.tagger),
    )
    filters = Filters(tuple(args.where or ()), tuple(args.exclude or ()), args.max_per_artist)
    for path in usable:
        try:
            found = recommender.recommend(path, k=args.top, pad=args.pad, filters=filters)
            answers.append(answer(path, found))
        except QueryError as error:
            print(f"trackrank recommend: {error}", file=sys.stderr)
            failed.append({"file": path, "reason": str(error)})
            continue
        if not args.json:
            _print_table(answers[-1])
    if args.json:
        json.dump({**recommender.describe(), "results": answers, "errors": failed}, sys.stdout, indent=2)
        print()
    return 1 if failed else 0


def _print_table(found: dict) -> None:
    print(f"# {found['file']}")
    if found["query_tags_from"]:
        tags = ", ".join(f"{t} {v:.2f}" if v is not None else t for t, v in found["query_tags"].items())
        print(f"# tags ({found['query_tags_from']}): {tags or 'none strong'}")
    print(f"{'rank':>4}  {'track_id':<24} {'artist':<24} distance  shared tags (its other tags)")
    for n in found["neighbours"]:
        others = [t for t in n["tags"] if t not in n["shared_tags"]]
        explained = ", ".join(n["shared_tags"]) + (f" ({', '.join(others)})" if others else "")
        print(f"{n['rank']:>4}  {n['track_id']:<24} {n['artist']:<24} {n['distance']:.4f}    {explained}")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from trackrank.coldstart.recommend import Recommender
    from trackrank.coldstart.service import LOCAL_HOSTS, create_app
    from trackrank.learn.embedding import choose_device

    choose_device(args.device)
    recommender = Recommender(
        args.index, model=args.model, device=args.device, max_duration_s=args.max_duration, tagger=_tagger(args.tagger)
    )
    hosts = args.allowed_host or [args.host, *LOCAL_HOSTS]
    app = create_app(
        recommender,
        int(args.max_upload_mb * 2**20),
        allowed_hosts=hosts,
        cors_origins=args.cors_origin or None,
        max_decodes=args.max_decodes,
    )
    uvicorn.run(app, host=args.host, port=args.port, **server_options())
    return 0


def server_options() -> dict:
    """uvicorn's settings for ``serve``: a cap on open connections (503 past it) and on idle kept-alive
    ones; access log off (the app logs one line per request itself, trackrank.coldstart.guards.RequestLog)."""
    from trackrank.coldstart.settings import KEEP_ALIVE_S, MAX_CONNECTIONS

    return {
        "log_level": "info",
        "access_log": False,
        "limit_concurrency": MAX_CONNECTIONS,
        "timeout_keep_alive": KEEP_ALIVE_S,
    }


def _tagger(value: str) -> str | None:
    """``--tagger``: a model.pt, ``beside`` (the run's at_baseline, when trained) or ``none``."""
    return None if value == "none" else value


def positive(kind: type) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` above 0, or the usage error that says so."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text}: must be above 0")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def parser() -> argparse.ArgumentParser:
    """The ``trackrank`` parser with its subcommands."""
    main = argparse.ArgumentParser(
        prog="trackrank",
        description="Catalog tracks that sound like new audio: index a "
        "trained system, recommend for audio files, serve the recommendations.",
    )
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)  # every subcommand
    common.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    common.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    querying = argparse.ArgumentParser(add_help=False, parents=[common])  # recommend and serve
    querying.add_argument("--index", default="results/index", help="index folder, or results/index for the default")
    querying.add_argument("--model", help="model.pt to query with (default: the one the index records)")
    querying.add_argument(
        "--tagger",
        default="beside",
        help="the auto-tagger that estimates a new file's tags: a model.pt, 'beside' (the run's "
        "models/at_baseline/model.pt next to the index's model, when trained) or 'none'",
    )
    querying.add_argument(
        "--max-duration",
        type=positive(float),
        default=MAX_DURATION_S,
        metavar="SECONDS",
        help=f"refuse audio longer than this, read from its header before decoding (default {MAX_DURATION_S:.0f})",
    )

    index = commands.add_parser(
        "index",
        parents=[common],
        help="embed every catalog track with a trained system (a TL system, or the auto-tagger's trunk) into an index",
        description="Embed every valid catalog track (all splits) into a FAISS index.",
    )
    index.add_argument("--model", help="results/models/<system>/model.pt (required to build)")
    index.add_argument(
        "--cache-dir",
        default="results/cache",
        help="the feature cache (shard-NNN.index.parquet with shard-NNN.f16.npy)",
    )
    index.add_argument("--tracks", default="results/catalog/tracks.parquet", help="the validated catalog table")
    index.add_argument(
        "--tags",
        default="results/catalog/tags.parquet",
        help="the validated catalog's tags, whose strong ones explain answers (skipped when missing)",
    )
    index.add_argument("--taxonomy", default="results/catalog/taxonomy.csv", help="the catalog's tag categories")
    index.add_argument(
        "--catalog-dir",
        help="the folder `serve` may stream audio from (default: the deepest folder holding every track)",
    )
    index.add_argument("--out", help="index folder (default: results/index/<system>, at_trunk for the auto-tagger)")
    index.add_argument(
        "--kind",
        default="exact",
        choices=INDEX_KINDS,
        help="exact inner product, or approximate for catalogs past ~1 M tracks",
    )
    index.add_argument("--n-patches", type=positive(int), default=8, help="evenly spread patches per track")
    index.set_defaults(run=_index)
    actions = index.add_subparsers(dest="action", metavar="[add|remove]")
    add = actions.add_parser(
        "add",
        help="embed new audio files into an existing index",
        description="Embed new audio into an existing index with its own model and patch treatment, and save it.",
    )
    add.add_argument("files", nargs="+", help="audio files")
    add.add_argument("--index", default="results/index", help="index folder, or results/index for the default")
    add.add_argument(
        "--ids", help="CSV with columns file, track_id (optional artist, catalog tag columns); default: file names"
    )
    add.add_argument(
        "--max-duration", type=positive(float), default=MAX_DURATION_S, metavar="SECONDS", help="longest file accepted"
    )
    remove = actions.add_parser(
        "remove", help="take tracks out of an index", description="Take tracks out of an index."
    )
    remove.add_argument("track_ids", nargs="+", help="track ids")
    remove.add_argument("--index", default="results/index", help="index folder, or results/index for the default")

    recommend = commands.add_parser(
        "recommend",
        parents=[querying],
        help="catalog tracks nearest to each audio file",
        description="Print the catalog tracks nearest to each audio file.",
    )
    recommend.add_argument("audio", nargs="+", help="audio files (any format librosa reads)")
    recommend.add_argument("--top", type=positive(int), default=10, help="neighbours per file")
    recommend.add_argument("--json", action="store_true", help="one JSON document instead of tables")
    recommend.add_argument("--pad", action="store_true", help="loop a file shorter than one patch (11.87 s)")
    recommend.add_argument("--n-patches", type=positive(int), help="patches per file (default: as the index)")
    recommend.add_argument(
        "--where", action="append", metavar="TAG", help="only tracks with this strong tag: TAG or Category=TAG (repeat)"
    )
    recommend.add_argument("--exclude", action="append", metavar="TAG", help="no track with this strong tag (repeat)")
    recommend.add_argument("--max-per-artist", type=positive(int), help="at most this many tracks per artist")
    recommend.set_defaults(run=_recommend)

    serve = commands.add_parser(
        "serve",
        parents=[querying],
        help="HTTP service and page for recommendations",
        description="Serve POST /recommend, GET /tracks/{id}/similar and a page at /.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--max-upload-mb", type=positive(float), default=MAX_UPLOAD_MB, help="largest accepted upload (MiB)"
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        metavar="HOST",
        help="a Host header to answer (repeat; '*' any): default the bound address and localhost",
    )
    serve.add_argument(
        "--cors-origin", action="append", metavar="ORIGIN", help="an origin other pages may call from (repeat)"
    )
    serve.add_argument(
        "--max-decodes",
        type=positive(int),
        default=MAX_DECODES,
        help=f"uploads decoded at once; others wait {DECODE_WAIT_S:.0f} s, then get 503 (default {MAX_DECODES})",
    )
    serve.set_defaults(run=_serve)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    log_to(None)
    logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader logs which CPU build it picked
    logging.getLogger().setLevel(logging.INFO if args.verbose or args.command != "recommend" else logging.WARNING)
    from trackrank.errors import TrackrankError

    try:
        return args.run(args)
    except (FileNotFoundError, TrackrankError) as error:
        print(f"trackrank {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
