"""Labelling state and navigation, Qt-free: what the label panel, the study filter and the
label import/export dialogs share.

:class:`Labelling` (``session.labelling``) holds the label sets, the chosen one, the reader,
each open image's key in the store, the committed decisions of the open images (every
reader's, as the store returned them), the AI's suggestions per image, and the images each
opened folder or study walks through (N / P / U). Store calls themselves run on the GUI's
store thread (``gui/label_store_client.py``); their replies are put in here, and subscribers
hear of it through ``labelling.events``:

- ``label_sets_changed(list[LabelSet])``, ``label_set_changed(LabelSet | None)``;
- ``labels_changed(None)``: committed decisions were loaded or written;
- ``reader_changed(str)``;
- ``suggestion_changed(Path)``: the AI's suggestion for that image changed;
- ``keys_changed(None)``: images were opened, identified or closed;
- ``image_changed(Path | None)``: the image labelled now (the one on screen) changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medviewer.events import EventGroup

if TYPE_CHECKING:
    from medviewer.labels.values import ImageLabel, ImageRef, LabelSet

FILTER_MODES = (("all", "All images"), ("labelled", "Labelled by me"),
                ("unlabelled", "Not labelled by me"), ("disagreeing", "Readers or AI disagree"))


def _values():  # the label value types load on first use, not at start-up
    from medviewer.labels import values

    return values


# ---------------------------------------------------------------- AI suggestions


@dataclass(frozen=True)
class AiSuggestion:
    """What the AI's decision offers for one image (``inference.decision``): the flagged
    findings, else the card's "no finding" class, else nothing; with the probabilities to
    show beside it. The label panel never decides anything of its own from probabilities."""

    model_name: str
    probabilities: Mapping[str, float]
    offered: tuple[str, ...]  # decision.offered, in the model's class names
    flagged: tuple[str, ...] = ()
    withheld: str = ""  # why the model's answer is not offered (outside intended use)

    @classmethod
    def from_prediction(cls, prediction: Any) -> AiSuggestion:
        decision = prediction.decision
        return cls(f"{prediction.model_name}@{prediction.model_version}",
                   {s.name: s.probability for s in prediction.scores},
                   tuple(decision.offered) if decision else (),
                   tuple(decision.flagged) if decision else (),
                   decision.withheld if decision else "")

    @staticmethod
    def _in_set(name: str, label_set: LabelSet) -> str | None:
        """The label set's class for a model class: the same name, else ignoring case."""
        if name in label_set.classes:
            return name
        folded = {c.casefold(): c for c in label_set.classes}
        return folded.get(str(name).casefold())

    def classes_for(self, label_set: LabelSet) -> tuple[str, ...] | None:
        """The offered classes in this label set; None when no model class is in the set.

        Single-label: the first offered class the set has (the most probable flagged one).
        Multi-label: every offered class the set has, in the set's order (possibly none).
        """
        if not any(self._in_set(name, label_set) for name in self.probabilities):
            return None
        if self.withheld:
            return ()
        offered = [c for c in (self._in_set(name, label_set) for name in self.offered) if c]
        if label_set.multi_label:
            return tuple(c for c in label_set.classes if c in offered)
        return tuple(offered[:1])

    def describe(self, label_set: LabelSet | None) -> str:
        if label_set is None:
            return f"AI ({self.model_name})"
        matched = {self._in_set(name, label_set): p for name, p in self.probabilities.items()}
        matched.pop(None, None)
        if not matched:
            names = ", ".join(sorted(map(str, self.probabilities))) or "none"
            return (f"AI ({self.model_name}): its classes ({names}) are not in label set "
                    f"'{label_set.name}'.")
        if self.withheld:
            return f"AI ({self.model_name}) offers nothing: {self.withheld}"
        ranked = sorted(matched.items(), key=lambda item: -item[1])[:3]
        odds = ", ".join(f"{name} {probability * 100:.0f} %" for name, probability in ranked)
        suggested = self.classes_for(label_set) or ()
        verdict = " + ".join(suggested) if suggested else "none of the classes"
        why = ("flagged" if self.flagged else "nothing flagged") if suggested else ""
        return (f"AI ({self.model_name}) suggests {verdict}"
                f"{f' ({why})' if why else ''} — {odds}."
                + (" Enter accepts." if suggested else ""))


# ---------------------------------------------------------------- scopes


@dataclass
class Scope:
    """One opened folder, file or DICOMDIR: its images in the browser's order."""

    root: Path
    paths: list[Path]


class LabellingEvents(EventGroup):
    names = ("label_sets_changed", "label_set_changed", "labels_changed", "reader_changed",
             "suggestion_changed", "keys_changed", "image_changed")


class Labelling:
    """The labelling state of one session (see the module docstring)."""

    def __init__(self, reader: str, store_path: Path | None = None) -> None:
        self.events = LabellingEvents()
        self.reader = reader
        self._store_path = Path(store_path) if store_path is not None else None
        self.label_sets: list[LabelSet] = []
        self.label_set: LabelSet | None = None
        self.current_path: Path | None = None
        self.current_ref: ImageRef | None = None
        self._labels: dict[str, dict[str, ImageLabel]] = {}  # key -> reader -> committed
        self._keys: dict[Path, str] = {}
        self._scopes: list[Scope] = []
        self._scope_index: dict[Path, Scope] | None = None
        self._suggestions: dict[Path, AiSuggestion] = {}
        self.loading_labels = 0  # reads of committed labels not yet answered

    # ------------------------------------------------------------ store and reader
    @property
    def store_path(self) -> Path:
        if self._store_path is None:
            from medviewer.paths import default_store_path

            self._store_path = default_store_path()
        return self._store_path

    def use_store(self, path: Path) -> None:
        """Another store file: what was read from the old one is forgotten."""
        self._store_path = Path(path)
        self._labels.clear()
        self.events.labels_changed.emit(None)

    def set_reader(self, name: str) -> None:
        self.reader = name
        self.events.reader_changed.emit(name)

    # ------------------------------------------------------------ label sets
    def set_label_sets(self, sets: Sequence[LabelSet]) -> None:
        self.label_sets = list(sets)
        self.events.label_sets_changed.emit(self.label_sets)

    def label_set_named(self, name: str | None) -> LabelSet | None:
        return next((s for s in self.label_sets if s.name == name), None)

    def choose_label_set(self, name: str | None) -> bool:
        """Make ``name`` the chosen set (None: none); True when that changed anything."""
        chosen = self.label_set_named(name)
        if chosen == self.label_set:
            return False
        self.label_set = chosen
        self._labels.clear()
        self.events.label_set_changed.emit(chosen)
        return True

    # ------------------------------------------------------------ opened images
    def open_catalog(self, root: Path, records: Sequence[Any]) -> None:
        """A folder/study was opened: ``records`` in the browser's order (N / P walk them).

        DICOM files without a SOP Instance UID get no key here: the store thread hashes
        them, then :meth:`add_keys`."""
        values = _values()
        paths = []
        for record in records:
            path = Path(record.path)
            paths.append(path)
            if record.content_hash:
                self._keys[path] = values.HASH_PREFIX + record.content_hash.lower()
            elif record.sop_instance_uid:
                self._keys[path] = record.sop_instance_uid
        if not paths:
            return
        root = Path(root)
        self._scopes = [s for s in self._scopes if s.root != root]
        self._scopes.append(Scope(root, paths))
        self._scope_index = None
        self.events.keys_changed.emit(None)

    def close_all(self) -> None:
        self._scopes.clear()
        self._scope_index = None
        self._keys.clear()  # as close_paths does for some images: nothing stale is kept
        self._suggestions.clear()
        self.current_path = self.current_ref = None
        self.events.keys_changed.emit(None)
        self.events.image_changed.emit(None)

    def close_paths(self, paths: set[Path]) -> None:
        """These images were closed (a study or series): N / P / U and progress no longer
        walk them; a scope left empty goes."""
        scopes = [Scope(s.root, [p for p in s.paths if p not in paths]) for s in self._scopes]
        self._scopes = [s for s in scopes if s.paths]
        self._scope_index = None
        for path in paths:
            self._keys.pop(path, None)
            self._suggestions.pop(path, None)
        if self.current_path in paths:
            self.image_gone()
        self.events.keys_changed.emit(None)

    def add_keys(self, found: Mapping[Path, str]) -> None:
        self._keys.update(found)
        self.events.keys_changed.emit(None)

    def paths_opened_from(self, root: Path) -> list[Path]:
        """The images of the folder/study opened as ``root``, in order ([] when not open)."""
        scope = next((s for s in self._scopes if s.root == Path(root)), None)
        return list(scope.paths) if scope is not None else []

    @property
    def known_paths(self) -> list[Path]:
        seen: dict[Path, None] = {}
        for scope in self._scopes:
            seen.update(dict.fromkeys(scope.paths))
        return list(seen)

    def key_for(self, path: Path | None) -> str | None:
        return self._keys.get(Path(path)) if path is not None else None

    def keys_of(self, paths: Sequence[Path]) -> list[str]:
        return [self._keys[p] for p in paths if p in self._keys]

    def paths_of(self, keys: Sequence[str]) -> list[Path]:
        wanted = set(keys)
        return [p for p, k in self._keys.items() if k in wanted]

    # ------------------------------------------------------------ the image on screen
    @property
    def current_key(self) -> str | None:
        return self.current_ref.key if self.current_ref is not None else None

    def show_image(self, path: Path, ref: ImageRef | None) -> None:
        """The image on screen (``ref`` None while it is still being identified)."""
        self.current_path = Path(path)
        self.set_current_ref(self.current_path, ref)
        self.events.image_changed.emit(self.current_path)

    def set_current_ref(self, path: Path, ref: ImageRef | None) -> None:
        if Path(path) != self.current_path:
            return  # the reader moved on before the image was identified
        self.current_ref = ref
        if ref is not None:
            self._keys[self.current_path] = ref.key

    def image_gone(self) -> None:
        self.current_path = self.current_ref = None
        self.events.image_changed.emit(None)

    # ------------------------------------------------------------ committed labels
    def labels_loaded(self, set_name: str, keys: Sequence[str],
                      labels: Sequence[ImageLabel]) -> bool:
        """Every reader's committed decision on ``keys`` (from the store); False when the
        label set changed meanwhile and the reply was dropped."""
        if self.label_set is None or self.label_set.name != set_name:
            return False
        for key in keys:
            self._labels[key] = {}
        for label in labels:
            self._labels.setdefault(label.image_key, {})[label.reader] = label
        self.events.labels_changed.emit(None)
        return True

    def label_written(self, set_name: str, key: str, label: ImageLabel | None) -> bool:
        """This reader's decision on ``key`` as the store committed it (None: cleared)."""
        if self.label_set is None or self.label_set.name != set_name:
            return False
        mine = self._labels.setdefault(key, {})
        if label is None:
            mine.pop(self.reader, None)
        else:
            mine[label.reader] = label
        self.events.labels_changed.emit(None)
        return True

    def is_loaded(self, key: str | None) -> bool:
        return key is not None and key in self._labels

    def my_label(self, key: str | None) -> ImageLabel | None:
        """This reader's committed decision on an image (None: none, or not loaded yet)."""
        if key is None:
            return None
        return self._labels.get(key, {}).get(self.reader)

    def committed_labels(self, key: str) -> dict[str, ImageLabel]:
        return dict(self._labels.get(key, {}))

    # ------------------------------------------------------------ AI suggestions
    def set_suggestion(self, path: Path, suggestion: AiSuggestion) -> None:
        path = Path(path)
        self._suggestions[path] = suggestion
        self.events.suggestion_changed.emit(path)

    def suggestion(self, path: Path | None = None) -> AiSuggestion | None:
        path = Path(path) if path is not None else self.current_path
        return self._suggestions.get(path) if path is not None else None

    def suggested_classes(self, path: Path | None = None) -> tuple[str, ...] | None:
        """The classes Enter would give (None: no suggestion, or none of the set's)."""
        suggestion = self.suggestion(path)
        if suggestion is None or self.label_set is None:
            return None
        classes = suggestion.classes_for(self.label_set)
        return classes if classes else None

    # ------------------------------------------------------------ filter modes
    def matches(self, path: Path, mode: str) -> bool:
        mine = self.my_label(self._keys.get(path))
        if mode == "labelled":
            return mine is not None
        if mode == "unlabelled":
            return mine is None
        if mode == "disagreeing":
            return self.disagrees(path)
        return True

    def disagrees(self, path: Path) -> bool:
        """Human readers differ, a reader overrode the AI, or a stored/shown AI read differs."""
        is_ai_reader = _values().is_ai_reader
        key = self._keys.get(path)
        labels = self._labels.get(key, {}) if key is not None else {}
        human = {r: l.classes for r, l in labels.items() if not is_ai_reader(r)}
        if len(set(human.values())) > 1:
            return True
        if any(l.source == "ai_overridden" and l.ai_classes is not None
               and set(l.ai_classes) != set(l.classes) for r, l in labels.items()
               if r in human):
            return True
        ai_reads = {l.classes for r, l in labels.items() if is_ai_reader(r)}
        suggested = self.suggested_classes(path)
        if suggested is not None:
            ai_reads.add(tuple(suggested))
        return any(set(ai) != set(classes) for ai in ai_reads for classes in human.values())

    # ------------------------------------------------------------ navigation
    def scope_of(self, path: Path | None) -> Scope | None:
        """The folder/study ``path`` was opened with (the one opened last when several
        hold it)."""
        if path is None:
            return None
        if self._scope_index is None:
            index: dict[Path, Scope] = {}
            for scope in self._scopes:
                index.update(dict.fromkeys(scope.paths, scope))
            self._scope_index = index
        return self._scope_index.get(Path(path))

    def step(self, step: int) -> tuple[Path | None, str]:
        """The image ``step`` rows from the one on screen, or None and why not."""
        scope = self.scope_of(self.current_path)
        if scope is None or self.current_path not in scope.paths:
            return None, "Open a folder or study to move through its images."
        index = scope.paths.index(self.current_path) + step
        if not 0 <= index < len(scope.paths):
            where = "last" if step > 0 else "first"
            return None, f"This is the {where} image of {scope.root.name}."
        return scope.paths[index], ""

    def next_unlabelled_target(self) -> tuple[Path | None, str]:
        """The next image (wrapping) without this reader's label, or None and why not."""
        scope = self.scope_of(self.current_path)
        if scope is None or self.current_path not in scope.paths:
            return None, "Open a folder or study to move through its images."
        if self.label_set is None:
            return None, "Choose or create a label set first (Labels > New label set)."
        target = self.next_unlabelled(scope, scope.paths.index(self.current_path))
        if target is None:
            return None, (f"Every image of {scope.root.name} has your label in "
                          f"'{self.label_set.name}'.")
        return target, ""

    def next_unlabelled(self, scope: Scope, index: int) -> Path | None:
        if self.label_set is None:
            return None
        n = len(scope.paths)
        for offset in range(1, n):
            path = scope.paths[(index + offset) % n]
            key = self._keys.get(path)
            if key is None or self.my_label(key) is None:
                return path
        return None

    def prefetch_targets(self, path: Path | None, ahead: int) -> list[Path]:
        """The images a reader is likely to open next from ``path``: the next ``ahead``,
        the previous one and the next unlabelled one."""
        scope = self.scope_of(path)
        if scope is None or path not in scope.paths:
            return []
        index = scope.paths.index(path)
        wanted = scope.paths[index + 1:index + 1 + ahead]
        if index > 0:
            wanted.append(scope.paths[index - 1])
        unlabelled = self.next_unlabelled(scope, index)
        if unlabelled is not None:
            wanted.append(unlabelled)
        return wanted

    def progress(self) -> tuple[int, int]:
        """(labelled by this reader, images) in the folder or study on screen."""
        scope = self.scope_of(self.current_path)
        if scope is None:
            return 0, 0
        done = sum(1 for p in scope.paths if self.my_label(self._keys.get(p)) is not None)
        return done, len(scope.paths)
