"""``samembed search``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..paths import DEFAULT_CACHE_DIR
from .app import CACHE_DIR_HELP, app, friendly_errors


@app.command("search")
@friendly_errors
def search_command(
    positive: list[str] = typer.Option([], "--positive", "-p", help="A positive: an image or chip id (as `samembed info` shows ids) or #ROW (a row number); repeatable."),
    negative: list[str] = typer.Option([], "--negative", "-n", help="A negative, as --positive; repeatable."),
    positive_point: list[str] = typer.Option([], "--positive-point", help="X,Y in the scene's map coordinates (its CRS): the chip holding the point, or the map cell under it with --granularity cell; repeatable."),
    negative_point: list[str] = typer.Option([], "--negative-point", help="A negative map point, as --positive-point; repeatable."),
    positives_file: Optional[Path] = typer.Option(None, "--positives-file", help="A CSV of positives: an id column, or x and y columns (map points); a group column, if any (a hits.csv of an earlier search), must name the group searched."),
    negatives_file: Optional[Path] = typer.Option(None, "--negatives-file", help="A CSV of negatives, as --positives-file."),
    mode: str = typer.Option("neighbours", "--mode", help="neighbours (cosine to the positives' mean, minus the negatives') or fewshot (a logistic regression of positives against negatives; without negatives, 100 random items stand in)."),
    granularity: str = typer.Option("image", "--granularity", help="image (one pooled vector per image or chip) or cell (every cell of the stored grid map: a heat map over scenes)."),
    feature: Optional[str] = typer.Option(None, "--feature", help="Pooled array at --granularity image (neck, trunk, cls, ...); default: the group's first."),
    k: int = typer.Option(100, "--k", "-k", help="Hits to return (the queries themselves are left out)."),
    index: str = typer.Option("auto", "--index", help="exact (every item, streamed), approximate (a faiss index stored beside the cache, built on first use; needs samembed[search]) or auto (approximate above 1,000,000 items)."),
    out: Path = typer.Option(Path("search"), "--out", help="Folder for hits.csv, hits.geojson and hits.parquet (georeferenced chips), heatmap.tif (a cell search on a scene) and contact_sheet.png."),
    sheet: int = typer.Option(20, "--sheet", help="Top hits drawn in contact_sheet.png (0: none)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="The dataset's images, for the contact sheet, if not where extraction found them."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset whose cache to search; default: the cache's only dataset."),
    encoder: Optional[str] = typer.Option(None, "--encoder", help="Cache group; needed when there are several."),
    cache_dir: str = typer.Option(str(DEFAULT_CACHE_DIR), "--cache-dir", help=CACHE_DIR_HELP),
):
    """Find more like these: rank every image, chip or map cell of a cache group by its likeness to a few positives.

    Prints what was searched and the top hits, and writes them to --out (docs/search.md).

    Example: samembed search --dataset scene --positive-point 501200,4999120 --granularity cell --k 50 --out search/
    """
    from ..cache import open_cache
    from ..errors import UsageError
    from ..search import search, write_outputs
    from ..search.query_files import parse_point, parse_query, read_queries

    if sheet < 0:
        raise UsageError(f"--sheet is a number of hits, 0 or more, not {sheet}")
    group = open_cache(cache_dir, dataset, encoder)
    positives = [parse_query(p) for p in positive] + [parse_point(p, "--positive-point") for p in positive_point]
    negatives = [parse_query(n) for n in negative] + [parse_point(n, "--negative-point") for n in negative_point]
    if positives_file is not None:
        positives += read_queries(positives_file, group, "--positives-file")
    if negatives_file is not None:
        negatives += read_queries(negatives_file, group, "--negatives-file")
    if not positives:
        raise UsageError("give at least one positive: --positive ID, --positive-point X,Y or --positives-file")
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="image", desc="building the index", dynamic_ncols=True)
        bar.update(done - bar.n)

    result = search(group, positives, negatives, mode=mode, granularity=granularity, feature=feature, k=k, index=index,
                    progress=progress)
    if bar is not None:
        bar.close()
    files = write_outputs(result, group, out, sheet=sheet, data_dir=data_dir)
    typer.echo(result.description)
    shown = result.hits.head(10)
    for _, hit in shown.iterrows():
        where = f" cell y={hit['cell_y']} x={hit['cell_x']}" if "cell_y" in hit else ""
        at = f" at ({hit['x']:.2f}, {hit['y']:.2f})" if "x" in hit else ""
        label = f" [{hit['label']}]" if isinstance(hit["label"], str) else ""
        typer.echo(f"{hit['rank']:>4}  {hit['score']:.4f}  {hit['id']}{where}{at}{label}")
    if len(result.hits) > len(shown):
        typer.echo(f"  ... {len(result.hits) - len(shown)} more in {out / 'hits.csv'}")
    typer.echo(f"wrote {', '.join(str(f) for f in files)}")
