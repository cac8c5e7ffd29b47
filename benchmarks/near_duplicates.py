"""Calibrate the near-duplicate audit (``emoaug.near_duplicates``) on a real corpus: copies must be found, other
recordings must not.

Takes real EmoDB (``--emodb DIR/wav``; file names carry speaker, sentence, emotion and take), makes copies of a
seeded sample of its recordings with the edits that merged corpora and scraped collections contain:

  dither       noise of one 16-bit step          noise30     white noise at 30 dB SNR
  gain         -9 dB                             resample8k  downsampled to 8 kHz
  resample44k  upsampled to 44.1 kHz             mp3         re-encoded as MP3 (libsndfile)
  trim         0.3 s cut at the start, 0.2 s at the end
  chain        8 kHz + MP3 + -6 dB + 0.2 s trim + dither

then computes the log-mel features of originals and copies with each preset (``--presets``, through the feature
cache), and prints for each preset:

* the candidate and verification similarities of every copy with its original (the lowest ones matter), and
  whether the audit, run over originals + copies with every copy under a speaker of its own, finds the pair;
* for every pair of *original* recordings by the verification stage (all pairs, not only candidates): the
  highest similarity among different speakers saying the same sentence, among one speaker's different takes or
  emotions of one sentence, and among all others; and the false-positive count of the audit itself on the
  originals (each pair it reports is a false positive: EmoDB holds no copies).

    python benchmarks/near_duplicates.py --emodb ../shared/data/emodb/wav --copies 60
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emoaug import near_duplicates as nd  # noqa: E402
from emoaug.features import FeatureCache, default_cache_root, extract_features  # noqa: E402
from emoaug.presets import get_preset  # noqa: E402

EDITS = ("dither", "noise30", "gain", "resample8k", "resample44k", "mp3", "trim", "chain")


def edit(name: str, y: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int, str]:
    """(samples, rate, format) of one edited copy."""
    import librosa

    if name == "dither":
        return y + rng.standard_normal(y.size) / 32768, sr, "WAV"
    if name == "noise30":
        noise = rng.standard_normal(y.size)
        return y + noise * np.sqrt(np.mean(y ** 2) / 10 ** 3) / np.sqrt(np.mean(noise ** 2)), sr, "WAV"
    if name == "gain":
        return y * 10 ** (-9 / 20), sr, "WAV"
    if name == "resample8k":
        return librosa.resample(y, orig_sr=sr, target_sr=8000), 8000, "WAV"
    if name == "resample44k":
        return librosa.resample(y, orig_sr=sr, target_sr=44100), 44100, "WAV"
    if name == "mp3":
        return y, sr, "MP3"
    if name == "trim":
        return y[int(0.3 * sr):y.size - int(0.2 * sr)], sr, "WAV"
    if name == "chain":
        z = librosa.resample(y, orig_sr=sr, target_sr=8000)[int(0.2 * 8000):] * 10 ** (-6 / 20)
        return z + rng.standard_normal(z.size) / 32768, 8000, "MP3"
    raise ValueError(name)


def emodb_items(folder: Path) -> pd.DataFrame:
    rows = [{"item_id": p.stem, "path": str(p), "speaker": p.stem[:2], "text_id": p.stem[2:5],
             "emotion": p.stem[5], "take": p.stem[6:]} for p in sorted(folder.glob("*.wav"))]
    return pd.DataFrame(rows)


def make_copies(items: pd.DataFrame, n: int, work: Path, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    picked = items.iloc[np.sort(rng.choice(len(items), size=min(n, len(items)), replace=False))]
    rows = []
    for _, item in picked.iterrows():
        y, sr = sf.read(item["path"], dtype="float64")
        for name in EDITS:
            z, rate, fmt = edit(name, y, sr, rng)
            path = work / f"{item['item_id']}_{name}.{'mp3' if fmt == 'MP3' else 'wav'}"
            sf.write(path, np.clip(z, -1, 1), rate, format=fmt)
            rows.append({"item_id": path.stem, "path": str(path), "speaker": f"copy-{path.stem}",
                         "original": item["item_id"], "edit": name})
    return pd.DataFrame(rows)


def with_hashes(items: pd.DataFrame) -> pd.DataFrame:
    return items.assign(sha1=[hashlib.sha1(Path(path).read_bytes()).hexdigest() for path in items["path"]])


def all_pair_similarities(verifier: nd.Verifier, items: pd.DataFrame) -> pd.DataFrame:
    """The verification similarity of every pair of ``items`` (the first rows of the verifier's items)."""
    rows = []
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            a, b = items.iloc[i], items.iloc[j]
            same_text = a["text_id"] == b["text_id"]
            if a["speaker"] != b["speaker"]:
                kind = "other speaker, same sentence" if same_text else "other speaker, other sentence"
            else:
                kind = "same speaker, same sentence (other take or emotion)" if same_text else \
                    "same speaker, other sentence"
            rows.append({"kind": kind, "similarity": verifier.similarity(i, j)})
    return pd.DataFrame(rows)


def summary_cosines(prints: list[nd.Fingerprint], pairs: list[tuple[int, int]], speakers: np.ndarray,
                    n_originals: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of each (original, copy) pair's standardised summaries (all dimensions), and the copy's rank among
    the original's candidates were it the corpus's only copy (1 + the originals of other speakers that are more
    similar to the original)."""
    s = np.stack([p.summary for p in prints])
    z = (s - s.mean(axis=0)) / np.maximum(s.std(axis=0), 1e-6)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    originals = z[:n_originals]
    cosines, ranks = [], []
    for i, j in pairs:
        cosine = float(z[i] @ z[j])
        cosines.append(cosine)
        ranks.append(int(np.sum((originals @ z[i] > cosine) & (speakers[:n_originals] != speakers[i]))) + 1)
    return np.array(cosines), np.array(ranks)


def calibrate(preset_name: str, originals: pd.DataFrame, copies: pd.DataFrame, cache_root: Path) -> None:
    preset = get_preset(preset_name)
    everything = pd.concat([originals, copies], ignore_index=True)
    start = time.perf_counter()
    features = extract_features(everything, preset, cache=FeatureCache(cache_root, preset), lazy=True)
    print(f"\n## preset {preset_name} ({len(everything)} items; features {time.perf_counter() - start:.0f} s)")
    ids = list(everything["item_id"])
    verifier = nd.Verifier(features, ids, preset)
    prints = verifier.prints
    index = {item_id: k for k, item_id in enumerate(ids)}

    copy_pairs = [(index[o], index[c]) for o, c in zip(copies["original"], copies["item_id"])]
    verified = np.array([verifier.similarity(i, j) for i, j in copy_pairs])
    cosines, ranks = summary_cosines(prints, copy_pairs, everything["speaker"].to_numpy(), len(originals))
    start = time.perf_counter()
    found = nd.near_duplicate_pairs(features, everything, preset, separate_speakers=True)
    audit_s = time.perf_counter() - start
    found_pairs = {frozenset(p) for p in zip(found["item_a"], found["item_b"])}
    copies = copies.assign(candidate=cosines, rank=ranks, verified=verified,
                           found=[frozenset((o, c)) in found_pairs for o, c in zip(copies["original"], copies["item_id"])])
    print(f"copies vs their originals (audit over all {len(everything)} items: {audit_s:.1f} s)")
    print("edit | copies | found | lowest candidate cosine | worst candidate rank | lowest verification | "
          "median verification")
    print("--- | --- | --- | --- | --- | --- | ---")
    for name, part in copies.groupby("edit", sort=False):
        print(f"{name} | {len(part)} | {int(part['found'].sum())} | {part['candidate'].min():.3f} | {part['rank'].max()} | "
              f"{part['verified'].min():.3f} | {part['verified'].median():.3f}")

    pairs = all_pair_similarities(verifier, originals)
    print(f"\nall {len(pairs)} pairs of original recordings, verification similarity")
    print("kind | pairs | max | 99.9th percentile | above threshold")
    print("--- | --- | --- | --- | ---")
    for kind, part in pairs.groupby("kind"):
        values = part["similarity"].dropna()
        print(f"{kind} | {len(values)} | {values.max():.3f} | {np.percentile(values, 99.9):.3f} | "
              f"{int((values >= nd.THRESHOLD).sum())}")
    flagged = nd.near_duplicate_pairs(features, originals, preset, separate_speakers=False)
    print(f"audit on the originals alone (threshold {nd.THRESHOLD}): {len(flagged)} pair(s) flagged "
          "(EmoDB holds no copies: each is a false positive)")
    for row in flagged.head(5).itertuples():
        print(f"  {row.item_a} ~ {row.item_b}: {row.similarity}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emodb", type=Path, required=True, help="folder of EmoDB's wav files")
    parser.add_argument("--copies", type=int, default=60, help="recordings copied with every edit")
    parser.add_argument("--presets", default="emogen,kim2024,malik2023")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    originals = with_hashes(emodb_items(args.emodb))
    with tempfile.TemporaryDirectory(prefix="near-dup-") as tmp:
        copies = with_hashes(make_copies(originals, args.copies, Path(tmp), args.seed))
        print(f"EmoDB: {len(originals)} recordings, {originals['speaker'].nunique()} speakers; {len(copies)} copies "
              f"of {args.copies} recordings ({', '.join(EDITS)}); method {nd.METHOD}, threshold {nd.THRESHOLD}")
        for name in args.presets.split(","):
            calibrate(name, originals, copies, default_cache_root())


if __name__ == "__main__":
    main()
