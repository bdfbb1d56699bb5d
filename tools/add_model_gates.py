"""Bring the shipped demo model up to date: features output, calibration, OOD check, scope.

The training runs of ``models/pneumonia-demo-1.3`` are not in the repository, so it cannot
be exported again. This tool does to the existing file what ``export.export_run`` now does
at export, reproducibly:

1. graph surgery: one Concat of the two members' pooled features (the tensors their linear
   heads already read) becomes a new output ``features`` [N, 512]. No node, weight or
   existing output changes; the tool checks that ``probabilities`` and ``cam`` are
   bit-for-bit what the original file gives;
2. scores the recorded split (``split.json`` beside the model; images under
   ``../shared/data/xray/kermany224``) through the reading pipeline
   (``open_instance`` + ``prepare_instance``), and calls ``training.gates.complete_card``:
   temperature fitted on validation, the operating point chosen again on the calibrated
   validation scores (Youden, as before), test metrics with intervals, the OOD statistics
   fitted on the training split with the threshold at validation's 95 % quantile;
3. states the intended use machine-readably and removes this machine's paths from the card;
4. measures the share of images flagged unusual on the Kermany test split and on
   out-of-scope images (``out_of_scope_images``), through ``predict_paths``, and records
   both in the card.

    nice .venv/bin/python tools/add_model_gates.py            # rewrite the model in place
    nice .venv/bin/python tools/add_model_gates.py --measure-only

Running it again on its own output gives the same file (the added node is replaced).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from medviewer.inference.model_card import IntendedScope, ModelCard, file_sha256  # noqa: E402
from medviewer.training import gates  # noqa: E402

MODEL_DIR = ROOT / "models" / "pneumonia-demo-1.3"
SHARED = ROOT.parent / "shared" / "data"
KERMANY = SHARED / "xray" / "kermany224"
FEATURES = "features"
ADDED_NODE = "medviewer_pooled_features"

# Kermany et al. 2018 (Cell 172:1122): "chest X-ray images (anterior-posterior) were
# selected from retrospective cohorts of pediatric patients of one to five years old from
# Guangzhou Women and Children's Medical Center". The JPEGs carry no ages of their own.
SCOPE = IntendedScope(
    modalities=["CR", "DX"], body_parts=["CHEST"], views=["AP", "PA"],
    patient_age_years=(1.0, 5.0),
    age_source="the training population as its publication describes it (Kermany et al., "
               "Cell 2018: pediatric patients one to five years old, Guangzhou); the images "
               "themselves carry no ages",
    minimum_size=224, photometric=["MONOCHROME1", "MONOCHROME2"],
    summary="pediatric chest CR/DX (AP/PA)")


# ---------------------------------------------------------------- graph surgery


def add_features_output(source: Path, target: Path) -> None:
    """Write ``source`` with a ``features`` output: the members' pooled features, concatenated."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(source))
    graph = model.graph
    for node in [n for n in graph.node if n.name == ADDED_NODE]:
        graph.node.remove(node)
    for output in [o for o in graph.output if o.name == FEATURES]:
        graph.output.remove(output)
    heads = {n.input[0] for n in graph.node if n.op_type == "Gemm"}
    pooled = [n.output[0] for n in graph.node if n.op_type == "ReduceMean"
              and n.output[0] in heads]
    if not pooled:
        raise SystemExit(f"{source}: no pooled features feeding a linear head were found")
    graph.node.append(helper.make_node("Concat", pooled, [FEATURES], axis=1, name=ADDED_NODE))
    graph.output.append(helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT,
                                                      ["batch", None]))
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def weights_digest(path: Path) -> str:
    """SHA-256 over every initializer's name and bytes: the weights, independent of the graph."""
    import onnx

    digest = hashlib.sha256()
    for tensor in sorted(onnx.load(str(path)).graph.initializer, key=lambda t: t.name):
        digest.update(tensor.name.encode())
        digest.update(onnx.numpy_helper.to_array(tensor).tobytes())
    return digest.hexdigest()


def raw_outputs(path: Path, tensors: np.ndarray, names: list[str]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    parts = [session.run(names, {"image": tensors[i:i + 64]}) for i in range(0, len(tensors), 64)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(names))]


# ---------------------------------------------------------------- scoring the split


def local_path(recorded: str) -> Path:
    """A split file's path (written on the machine that trained) under this checkout's data."""
    parts = Path(recorded).parts
    return KERMANY.joinpath(*parts[parts.index("kermany224") + 1:])


def tensors_for(paths: list[Path], card: ModelCard) -> np.ndarray:
    from concurrent.futures import ThreadPoolExecutor

    from medviewer.dicom.reader import open_instance
    from medviewer.inference.preprocess import prepare_instance

    def one(path: Path) -> np.ndarray:
        return prepare_instance(open_instance(path), card).tensor

    with ThreadPoolExecutor(2) as pool:
        return np.stack(list(pool.map(one, paths)))


def score(path: Path, rows: list[dict], card: ModelCard) -> gates.ScoredSplit:
    tensors = tensors_for([local_path(r["path"]) for r in rows], card)
    probabilities, features = raw_outputs(path, tensors, ["probabilities", FEATURES])
    return gates.ScoredSplit(probabilities, np.array([r["label"] for r in rows]), features)


# ---------------------------------------------------------------- out-of-scope images


def _candidate_files() -> list[Path]:
    from pydicom.data import get_testdata_files

    files = sorted(p for p in (SHARED / "dicom").rglob("*") if p.is_file())
    files += sorted(Path(f) for f in get_testdata_files())
    try:
        import data_store  # the pydicom-data package

        files += sorted(p for p in Path(data_store.__file__).parent.rglob("*.dcm"))
    except ImportError:
        pass
    return files


def out_of_scope_images() -> tuple[list[Path], list[Path]]:
    """(out-of-scope images, adult chest radiographs): one file per distinct image among
    the shared DICOM test data, pydicom's test files and pydicom-data.

    Distinct: the same picture stored in several transfer syntaxes counts once (modality,
    descriptions, size and colour kind must differ). Chest radiographs are not out of scope
    by content: they are returned apart. So are images that do not open.
    """
    from medviewer.dicom.reader import open_instance

    chosen: dict[tuple, Path] = {}
    chest: dict[tuple, Path] = {}
    for path in _candidate_files():
        try:
            instance = open_instance(path)
            if not (instance.has_pixels and instance.rows and instance.columns):
                continue
            instance.display_frame(0)
        except Exception:  # noqa: BLE001 - damaged test files are not images to measure
            continue
        header = instance.header
        text = " ".join(str(header.get(k, "")) for k in
                        ("BodyPartExamined", "StudyDescription", "SeriesDescription")).upper()
        photometric = str(header.get("PhotometricInterpretation", ""))
        key = (instance.modality, text, instance.rows, instance.columns,
               "grey" if photometric.startswith("MONO") else "colour")
        radiograph = instance.modality in ("CR", "DX")
        if radiograph and ("CHEST" in text or "THORAX" in text or "CHEST" in path.name.upper()
                           or not text.strip()):
            chest.setdefault(key, path)  # unknown body part: may be a chest, kept apart
        else:
            chosen.setdefault(key, path)
    return sorted(chosen.values()), sorted(chest.values())


def measure(model_dir: Path) -> dict:
    """Shares flagged unusual (and outside intended use), read as the app reads them."""
    from medviewer import paths
    from medviewer.inference import registry
    from medviewer.inference.predict import predict_paths

    paths.BUILTIN_MODELS_DIR = model_dir.parent
    entry = next(e for e in registry.scan_models(include_user=False)[0]
                 if e.onnx_path.parent == model_dir)
    test_files = sorted(p for c in entry.card.classes for p in (KERMANY / "test" / c).iterdir())
    outside, chest = out_of_scope_images()
    report = {}
    for name, files in (("kermany_test", test_files), ("out_of_scope", outside),
                        ("adult_or_unknown_chest_radiographs", chest)):
        results = [p for p in predict_paths(files, entry, audit=False) if p.ok]
        unusual = [p for p in results if p.ood]
        withheld = [p for p in results if p.ood or p.in_scope is False]
        report[name] = {"images": len(results), "flagged_unusual": len(unusual) / len(results),
                        "unusual_or_outside_intended_use": len(withheld) / len(results)}
        report[name]["score_range"] = [min(p.ood_score for p in results),
                                       max(p.ood_score for p in results)]
        if name != "kermany_test":
            report[name]["files"] = sorted({f"{p.path.parent.name}/{p.path.name}"
                                            for p in results})
            report[name]["missed"] = sorted(f"{p.path.name} ({p.ood_score:.1f})"
                                            for p in results if not p.ood)
    return report


# ---------------------------------------------------------------- the card


def _strip_machine_paths(card: ModelCard) -> None:
    """The card names data by what it is, never by where it lay on the training machine."""
    training = card.training
    for member in training.get("ensemble_members", []):
        member["checkpoint"] = f"run of seed {member.get('seed')}: checkpoints/best.pt"
    data = training.get("data", {})
    data.update(source="kermany224/train", test_source="kermany224/test")
    config = training.get("config", {})
    config.update(data="kermany224/train", test_data="kermany224/test")


def update(model_dir: Path) -> dict:
    onnx_path = model_dir / "pneumonia-demo.onnx"
    card_path = onnx_path.with_suffix(".json")
    raw = json.loads(card_path.read_text(encoding="utf-8"))
    card = ModelCard.from_dict(raw, origin=str(card_path))
    original_sha = raw.get("training", {}).get("graph_surgery", {}).get("original_sha256",
                                                                        card.sha256)
    split = json.loads((model_dir / "split.json").read_text(encoding="utf-8"))

    before = weights_digest(onnx_path)
    probe_rows = split["test"][:16]
    probe = tensors_for([local_path(r["path"]) for r in probe_rows], card)
    old = raw_outputs(onnx_path, probe, ["probabilities", "cam"])
    staged = onnx_path.with_name(".staged.onnx")
    add_features_output(onnx_path, staged)
    new = raw_outputs(staged, probe, ["probabilities", "cam", FEATURES])
    if weights_digest(staged) != before or not all(
            np.array_equal(a, b) for a, b in zip(old, new[:2])):
        staged.unlink()
        raise SystemExit("graph surgery changed the weights or an existing output")
    staged.replace(onnx_path)
    card.sha256 = file_sha256(onnx_path)
    card.outputs.features = FEATURES

    splits = {name: score(onnx_path, split[name], card) for name in ("train", "val", "test")}
    gates.complete_card(card, onnx_path, splits["val"], splits["test"], splits["train"],
                        method=card.training.get("config", {}).get("operating_point", "youden"),
                        test_source="kermany224/test")
    card.intended_scope = SCOPE
    _strip_machine_paths(card)
    card.training["graph_surgery"] = {
        "tool": "tools/add_model_gates.py", "original_sha256": original_sha,
        "added_output": f"{FEATURES}: Concat of the two members' pooled features (512)",
        "weights_sha256": before,
        "unchanged": "probabilities and cam are bit-for-bit the original file's"}
    card.save(card_path)
    return {"temperature": card.calibration.temperature, "metrics": card.metrics,
            "operating_points": {k: v.threshold for k, v in card.operating_points.items()},
            "ood": card.ood.to_dict(), "calibration": card.calibration.figures}


def record_measurement(model_dir: Path, report: dict) -> None:
    card_path = model_dir / "pneumonia-demo.json"
    card = ModelCard.load(card_path)
    assert card.ood is not None
    card.ood.detail["measured"] = {
        "command": "tools/add_model_gates.py (measure)",
        "kermany_test_flagged_unusual": report["kermany_test"]["flagged_unusual"],
        "out_of_scope_flagged_unusual": report["out_of_scope"]["flagged_unusual"],
        "out_of_scope_unusual_or_outside_intended_use":
            report["out_of_scope"]["unusual_or_outside_intended_use"],
        "out_of_scope_images": report["out_of_scope"]["images"],
        "out_of_scope_smallest_score": report["out_of_scope"]["score_range"][0],
        "adult_or_unknown_chest_radiographs_flagged_unusual":
            report["adult_or_unknown_chest_radiographs"]["flagged_unusual"],
        "out_of_scope_set": "one file per distinct image (CT, MR, US, NM, PT, XA, MG, "
                            "colour/photographic and non-chest radiographs) from the shared "
                            "DICOM test data, pydicom's test files and pydicom-data",
    }
    card.save(card_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=str(MODEL_DIR))
    parser.add_argument("--measure-only", action="store_true")
    args = parser.parse_args()
    model_dir = Path(args.model_dir)
    if not args.measure_only:
        print(json.dumps(update(model_dir), indent=1, default=float), flush=True)
    report = measure(model_dir)
    print(json.dumps(report, indent=1), flush=True)
    record_measurement(model_dir, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
