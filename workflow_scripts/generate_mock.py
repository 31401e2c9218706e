"""Generate one synthetic NanoAOD file of the embedded AGC dataset (one sample, one file index)."""

import argparse
import os
import sys

from agc_ttbar._imports import skip_unused_optional_imports

skip_unused_optional_imports()  # before awkward/uproot: 18 short jobs of the default dataset

from agc_ttbar.mock.generator import MockConfigError, generate_events, sample_code, unskimmed_chunks  # noqa: E402
from agc_ttbar.mock.writer import FORMATS, parse_compression, write_file, write_unskimmed_file  # noqa: E402
from agc_ttbar.samples import SAMPLES, sample_key  # noqa: E402


def main(argv=None) -> int:
    known = [sample_key(p, v) for p, v in SAMPLES]
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sample", required=True, help=f"fileset key, one of: {', '.join(known)}")
    p.add_argument("--index", required=True, type=int, help="file index within the sample (0-based)")
    p.add_argument("--events", required=True, type=int, help="entries to write (events passing the filter)")
    p.add_argument("--seed", required=True, type=int, help="master seed of the dataset")
    p.add_argument("--output", required=True, help="ROOT file to write")
    p.add_argument("--compression", default="ZLIB:4", help="ALGORITHM:LEVEL (ZLIB, LZMA, LZ4, ZSTD)")
    p.add_argument("--muon-tight-fraction", type=float, default=0.0,
                   help="probability that a prompt muon has Muon_tightId=True (real 2015 files: 0)")
    p.add_argument("--format", default="ttree", choices=FORMATS,
                   help="write Events/Runs as TTrees or as RNTuples (config key mock.format)")
    p.add_argument("--full-layout", action="store_true", help="also write the other ~900 real NanoAOD branches")
    p.add_argument("--unskimmed", action="store_true",
                   help="write every generated event, no generator-level filter (config mock.skim: false); "
                        "--events is then the number of generated events")
    args = p.parse_args(argv)

    if args.sample not in known:
        print(f"ERROR: unknown sample {args.sample!r}; known samples: {', '.join(known)}", file=sys.stderr)
        return 2
    if args.events < 0 or args.index < 0 or args.seed < 0:
        print(f"ERROR: --events, --index and --seed must be >= 0 (got {args.events}, {args.index}, {args.seed})",
              file=sys.stderr)
        return 2
    if args.unskimmed:
        return _unskimmed(args)
    try:
        parse_compression(args.compression)
        gen = generate_events(args.sample, args.index, args.events, args.seed, args.muon_tight_fraction)
    except (MockConfigError, ValueError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    import time

    t0 = time.perf_counter()
    write_file(args.output, gen, args.compression, args.full_layout,
               seed_seq=[args.seed, sample_code(args.sample), args.index, 2], fmt=args.format)
    t_write = time.perf_counter() - t0
    size = os.path.getsize(args.output)
    total = gen.seconds + t_write
    print(f"{args.sample} file {args.index:05d}: {gen.n_kept} events written, nevts (pre-filter) {gen.nevts}, "
          f"{gen.n_class} generated in the generation class, filter efficiency "
          f"{gen.n_kept / max(gen.nevts, 1):.3g}")
    print(f"generation {gen.seconds:.2f} s ({gen.n_class / max(gen.seconds, 1e-9):,.0f} generated events/s, "
          f"{gen.n_kept / max(gen.seconds, 1e-9):,.0f} written events/s), writing {t_write:.2f} s, "
          f"total {gen.n_kept / max(total, 1e-9):,.0f} events/s; {size / 1e6:.2f} MB "
          f"({size / max(gen.n_kept, 1):.0f} bytes/event, {args.compression}, {args.format})")
    return 0


def _unskimmed(args) -> int:
    import time

    if args.events < 1:
        print(f"ERROR: an unskimmed file needs --events >= 1 (config mock.unskimmed_events_per_file), "
              f"got {args.events}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        parse_compression(args.compression)
        chunks = unskimmed_chunks(args.sample, args.index, args.events, args.seed, args.muon_tight_fraction)
        stats = write_unskimmed_file(args.output, chunks, args.compression, args.full_layout,
                                     seed_seq=[args.seed, sample_code(args.sample), args.index, 2], fmt=args.format)
    except (MockConfigError, ValueError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    total = time.perf_counter() - t0
    size = os.path.getsize(args.output)
    n = stats["events"]
    print(f"{args.sample} file {args.index:05d}: {n} events generated and written (unskimmed, nevts = entries)")
    print(f"generation {stats['generate_s']:.2f} s, writing {stats['write_s']:.2f} s, total {total:.2f} s "
          f"({n / max(total, 1e-9):,.0f} events/s); {size / 1e6:.2f} MB ({size / n:.0f} bytes/event, "
          f"{args.compression}, {args.format}{', full layout' if args.full_layout else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
