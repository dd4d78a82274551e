"""Merge the reviewers' sheets of one or more review rounds into the committed review CSV.

    python tools/mislabel_review_merge.py WS ROUND_DIR [ROUND_DIR ...] --out reports/review/fer2013-labels-reviewed.csv
    python tools/mislabel_review_merge.py WS ROUND_DIR --append reports/review/fer2013-labels-reviewed.csv

``--append``: add the rounds to an existing review CSV (whose earlier round folders are gone), refusing
an image reviewed twice.

Each ROUND_DIR was made by ``tools/mislabel_review_sheets.py`` (``key.csv`` + ``reviewer_<r>/review.csv``).
A tile's verdict is its own reviewer's; the overlap reviewer's verdict goes to ``second_verdict`` /
``second_shows`` (inter-reviewer agreement). Every tile must have its reviewer's row.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from curate.workspace import Workspace


def merge_round(folder: Path) -> pd.DataFrame:
    key = pd.read_csv(folder / "key.csv", dtype={"image_id": str})
    reviews = []
    for sub in sorted(folder.glob("reviewer_*")):
        table = pd.read_csv(sub / "review.csv", dtype=str, keep_default_na=False)
        table["tile"] = table["tile"].astype(int)
        table["by"] = int(sub.name.split("_")[1])
        reviews.append(table)
    allrows = pd.concat(reviews).merge(key[["tile", "reviewer"]], on="tile")
    own = allrows[allrows["by"] == allrows["reviewer"]].drop_duplicates("tile")
    second = allrows[allrows["by"] != allrows["reviewer"]].drop_duplicates("tile")
    missing = set(key["tile"]) - set(own["tile"])
    if missing:
        raise SystemExit(f"{folder}: {len(missing)} tiles without their reviewer's verdict, e.g. {sorted(missing)[:5]}")
    out = key.merge(own[["tile", "verdict", "shows", "note"]], on="tile")
    out = out.merge(second[["tile", "verdict", "shows"]].rename(columns={"verdict": "second_verdict",
                                                                       "shows": "second_shows"}), on="tile", how="left")
    out["round"] = folder.name
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workspace")
    parser.add_argument("rounds", nargs="+")
    parser.add_argument("--out", help="write the merged rounds here")
    parser.add_argument("--append", help="add the rounds to this existing review CSV")
    args = parser.parse_args()
    if bool(args.out) == bool(args.append):
        raise SystemExit("give exactly one of --out and --append")
    merged = pd.concat([merge_round(Path(r)) for r in args.rounds], ignore_index=True)
    if args.append:
        old = pd.read_csv(args.append, dtype=str, keep_default_na=False)
        merged = pd.concat([old.assign(tile=old["tile"].astype(int)), merged.astype({"tile": int})], ignore_index=True)
        args.out = args.append
    dup = merged["image_id"].duplicated()
    if dup.any():
        raise SystemExit(f"images reviewed in two rounds: {merged.loc[dup, 'image_id'].tolist()[:5]}")
    manifest = Workspace(Path(args.workspace)).manifest().set_index("image_id")
    merged["source_row"] = manifest.loc[merged["image_id"], "source_row"].astype("Int64").to_numpy()
    columns = ["image_id", "source_row", "split", "label", "parts", "verdict", "shows", "note", "reviewer",
               "second_verdict", "second_shows", "round", "tile"]
    merged = merged[columns].sort_values("image_id")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    merged.to_csv(args.out, index=False)
    print(f"{len(merged)} reviewed images -> {args.out}: {merged['verdict'].value_counts().to_dict()}")


if __name__ == "__main__":
    main()
