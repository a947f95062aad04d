"""`python -m report cdk.out [--out docs/report.md] [--picture docs/pipeline-timeline.svg]`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from report.assembly import AssemblyError, read_assembly
from report.render import build_report, render_markdown, render_timeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="report", description=__doc__)
    parser.add_argument("assembly", type=Path, help="cloud assembly directory (cdk.out)")
    parser.add_argument("--out", type=Path, default=Path("docs/report.md"), help="Markdown report path")
    parser.add_argument("--picture", type=Path, default=None,
                        help="timeline picture (.svg or .png); default: pipeline-timeline.svg beside --out")
    args = parser.parse_args(argv)
    try:
        assembly = read_assembly(args.assembly)
    except AssemblyError as error:
        print(error, file=sys.stderr)
        return 2
    picture = args.picture or args.out.parent / "pipeline-timeline.svg"
    report = build_report(assembly)
    render_timeline(report, picture)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    relative = os.path.relpath(picture.resolve(), args.out.parent.resolve())
    args.out.write_text(render_markdown(report, picture=relative, assembly_path=str(args.assembly)),
                        encoding="utf-8")
    print(f"report: wrote {args.out} and {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
