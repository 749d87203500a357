"""The assignment spec: what students implement and how it is graded.

The spec is data (TOML, read with tomllib). `load_spec()` turns it into frozen
dataclasses and rejects a malformed file with a message naming the table and the field; a key
it does not know is kept as a warning on the Assignment (`warnings`), which the commands print.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.shared.conventions import CHANNELS, OPTIMIZERS
from grader.shared.resources import DEFAULT_SPEC


class SpecError(ValueError):
    """The assignment spec file is malformed."""


DATASET_KINDS = ("synthetic", "folders", "carla", "cityscapes")
DEFAULT_ASSIGNMENT_ID = "fcn-unet-segmentation"  # grader/spec/default.toml


@dataclass(frozen=True)
class DatasetConfig:
    """Which data the assignment uses. `synthetic` needs no files; the others read `root`."""

    kind: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    root: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)  # passed to the loader (e.g. CARLA's splits)
    # Public seeds of the synthetic train and val splits. The test split's seed is
    # never in the spec: the grader keeps it secret (grader.data.sources).
    train_seed: int = 1
    val_seed: int = 2
    # Classes a few pixels wide (road lines, poles...): the report highlights them where
    # skip connections should make the difference.
    thin_classes: tuple[str, ...] = ()
    # The images' channels as the models receive them: 3 (RGB) or 1 (grayscale: every
    # image is read as one luminance channel, and models are built for one input channel).
    channels: int = 3


@dataclass(frozen=True)
class Family:
    id: str
    title: str
    input_size: int
    pretrained_kwarg: str | None = None
    # The size of the training probes (gradients, backbone steps, dataflow graph, skip
    # ablation), when the spec sets one; else Assignment.probe_size derives it.
    probe_size: int | None = None


@dataclass(frozen=True)
class Variant:
    id: str
    title: str
    family: Family
    class_name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)  # what the variant is: stride, frozen, skip...
    aliases: tuple[str, ...] = ()                         # other class names students use for it
    architecture: dict[str, Any] = field(default_factory=dict)  # what its dataflow graph must show

    @property
    def backbone_check(self) -> str | None:
        """The check that a frozen or a fine-tuned backbone really is one (FCN variants)."""
        if self.family.id != "fcn" or "frozen" not in self.traits:
            return None
        return "frozen_backbone" if self.traits["frozen"] else "finetuned_backbone"

    @property
    def scored_checks(self) -> tuple[str, ...]:
        """The checks that carry this variant's check marks (weighted by the rubric item)."""
        ids = ["builds", "forward_shape", "gradients"]
        if self.backbone_check:
            ids.append(self.backbone_check)
        if self.architecture:
            ids.append("architecture")
        return tuple(ids)

    @property
    def identity_checks(self) -> tuple[str, ...]:
        """The checks that make the model *this* variant: failing one, the model is something
        else, and its mIoU earns no performance marks (grader.grading.score)."""
        ids = []
        if self.architecture:
            ids.append("architecture")
        if self.architecture.get("long_skips"):
            ids.append("skip_ablation")
        if self.backbone_check:
            ids.append(self.backbone_check)
        return tuple(ids)


# The checks that can carry marks, and their default weights within a variant's check marks:
# the check that makes a variant *that* variant (its architecture, its frozen or fine-tuned
# backbone) weighs more than building and running, which every attempt gets right.
DEFAULT_CHECK_WEIGHTS = {"builds": 1.0, "forward_shape": 1.0, "gradients": 1.0, "frozen_backbone": 2.0,
                         "finetuned_backbone": 2.0, "architecture": 3.0}


@dataclass(frozen=True)
class RubricItem:
    """Marks for a part of the assignment. An item with variants is scored automatically:
    its marks are shared equally by its variants, and each variant's share is split
    between its checks and its performance (`performance_share`). An item without
    variants is manual (e.g. a discussion): its marks are left for a human grader."""

    id: str
    title: str
    marks: float
    variants: tuple[str, ...]
    performance_share: float = 0.0
    prompts: tuple[str, ...] = ()   # questions shown in the report for a manual item
    # Relative weights of the checks that carry the check marks (grader.grading.checks.scored_checks):
    # the spec's `check_weights` over DEFAULT_CHECK_WEIGHTS. A weight of 0 takes a check's marks away.
    check_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CHECK_WEIGHTS))

    @property
    def manual(self) -> bool:
        return not self.variants


@dataclass(frozen=True)
class Comparison:
    """A comparison the assignment asks students to discuss, computed by the report from the
    results: `variants` side by side (test mIoU, per-class IoU, parameters, time), or `pairs`
    (before, after) one row each with the change. `discussion`: the manual rubric item it
    serves, so the report shows it beside that item's prompts."""

    id: str
    title: str
    variants: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()
    discussion: str | None = None

    @property
    def variant_ids(self) -> tuple[str, ...]:
        return self.variants or tuple(v for pair in self.pairs for v in pair)


PROFILE_FIELDS = ("batch_size", "steps", "lr", "weight_decay", "optimizer", "eval_every")


@dataclass(frozen=True)
class Profile:
    """How the grader trains every variant: the same for every student. Any field in
    PROFILE_FIELDS may be one value or a table per family (`lr = { fcn = 1e-4, unet = 1e-3 }`)."""

    id: str
    title: str
    image_size: dict[str, int]      # per family
    settings: dict[str, Any]        # PROFILE_FIELDS, each a value or {family: value}
    train_images: int
    val_images: int
    test_images: int
    grid_images: int                # test images kept with their predictions for the report
    seed: int
    pretrained: bool                # use ImageNet backbone weights when the grader has them
    # False: too short to tell the variants apart (smoke); reports caveat their comparisons.
    # Not in the hashes: it describes the figures, it does not change them.
    separates_variants: bool = True

    def get(self, name: str, family: str) -> Any:
        value = self.settings[name]
        return value[family] if isinstance(value, dict) else value

    @property
    def training_sha256(self) -> str:
        """Fingerprint of what shapes the trained model: its version as far as a band is
        concerned. Split sizes for curves and evaluation are left out: they change how
        precisely an mIoU is measured, not what it is (grader.grading.bands.BandIdentity)."""
        fields = {"image_size": self.image_size, "settings": self.settings, "train": self.train_images,
                  "seed": self.seed, "pretrained": self.pretrained}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    @property
    def sha256(self) -> str:
        """Fingerprint of everything that changes the numbers (a grade's key records it)."""
        fields = {"image_size": self.image_size, "settings": self.settings, "train": self.train_images,
                  "val": self.val_images, "test": self.test_images, "seed": self.seed, "pretrained": self.pretrained}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Contract:
    input: str
    output: str
    num_classes_kwarg: str
    classes: dict[str, str]


@dataclass(frozen=True)
class Assignment:
    id: str
    title: str
    dataset: DatasetConfig
    families: dict[str, Family]
    contract: Contract
    variants: tuple[Variant, ...]
    rubric: tuple[RubricItem, ...]
    policy: dict[str, Any]
    path: Path
    sha256: str
    profiles: dict[str, Profile] = field(default_factory=dict)
    comparisons: tuple[Comparison, ...] = ()
    reference: Path | None = None   # the course's reference solution ([assignment] reference); None: segrade's
    warnings: tuple[str, ...] = ()  # keys of the file that nothing reads (misspelt ones among them)

    @property
    def is_default(self) -> bool:
        """The assignment segrade ships as its default (its reference, bands and figures are segrade's)."""
        return self.id == DEFAULT_ASSIGNMENT_ID

    def reference_dir(self) -> Path | None:
        """The reference solution that sets this assignment's bands: the spec's own, segrade's for
        the default assignment, None when a course's spec names none."""
        if self.reference is not None:
            return self.reference
        if self.is_default:
            from grader.shared.resources import reference_dir

            return reference_dir()
        return None

    def has_family_with_pretrained_backbone(self) -> bool:
        """Whether any family takes ImageNet backbone weights (so weights messages concern it)."""
        return any(f.pretrained_kwarg for f in self.families.values())

    def probe_size(self, family_id: str) -> int:
        """The input size of a family's training probes: the spec's `probe_size`, else the
        smallest size the spec runs the family at (its input_size, every profile's image size).
        The default assignment's is 64 (its smoke profile); a course whose every size is 256
        probes at 256, so a model that works there is never failed at a size nobody asked for."""
        family = self.families[family_id]
        if family.probe_size is not None:
            return family.probe_size
        return min([family.input_size, *(p.image_size[family_id] for p in self.profiles.values())])

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.dataset.class_names

    @property
    def palette(self) -> tuple[tuple[int, int, int], ...]:
        return self.dataset.palette

    @property
    def num_classes(self) -> int:
        return len(self.dataset.class_names)

    @property
    def total_marks(self) -> float:
        return sum(item.marks for item in self.rubric)

    @property
    def automatic_marks(self) -> float:
        """The marks segrade scores itself (rubric items with variants)."""
        return sum(item.marks for item in self.rubric if not item.manual)

    @property
    def model_class_names(self) -> set[str]:
        """Every class name the spec expects or knows for a variant (contract and aliases)."""
        return {*self.contract.classes, *(v.class_name for v in self.variants),
                *(a for v in self.variants for a in v.aliases)}

    def profile(self, profile_id: str) -> Profile:
        try:
            return self.profiles[profile_id]
        except KeyError:
            raise KeyError(f"no training profile {profile_id!r} in {self.path}; known: "
                           f"{', '.join(self.profiles) or 'none'}") from None

    def rubric_item(self, variant_id: str) -> RubricItem | None:
        return next((item for item in self.rubric if variant_id in item.variants), None)

    def variant(self, variant_id: str) -> Variant:
        for variant in self.variants:
            if variant.id == variant_id:
                return variant
        raise KeyError(f"no variant {variant_id!r} in {self.path}; known: {[v.id for v in self.variants]}")


# --------------------------------------------------------------------------- typed fields
# TOML values have types; a wrong one is named with its place in the file, never left to
# int() or float() to complain about without saying where.


def _integer(value: Any, where: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where} {name} must be an integer, got {value!r}")
    return value


def _number(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{where} {name} must be a number, got {value!r}")
    return float(value)


def _boolean(value: Any, where: str, name: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{where} {name} must be true or false, got {value!r}")
    return value


def _strings(value: Any, where: str, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SpecError(f"{where} {name} must be an array of strings, got {value!r}")
    return tuple(value)


def _table(value: Any, where: str, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{where} {name} must be a table, got {value!r}")
    return dict(value)


def _string(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where} {name} must be a non-empty string, got {value!r}")
    return value


def _text(value: Any, where: str, name: str) -> str:
    """Words for people (the contract's descriptions): any string, empty included."""
    if not isinstance(value, str):
        raise SpecError(f"{where} {name} must be a string, got {value!r}")
    return value


# The keys each table of a spec may hold (True: required), as docs/spec.md lists them. A key
# not listed is reported, since a misspelt one (`perfomance_share`) would otherwise take its
# default in silence. Not listed, because their keys are the course's own: a variant's kwargs
# and traits, [contract.classes], and [dataset.options] (its loader names what it does not take).
SPEC_KEYS: dict[str, dict[str, bool]] = {
    "spec": {"assignment": True, "dataset": True, "families": True, "contract": True, "variants": True,
             "rubric": False, "comparisons": False, "profiles": False, "policy": False},
    "assignment": {"id": True, "title": False, "reference": False, "spec_version": False},
    "dataset": {"kind": False, "root": False, "class_names": True, "palette": True, "thin_classes": False,
                "channels": False, "synthetic": False, "options": False},
    "dataset.synthetic": {"train_seed": False, "val_seed": False},
    "family": {"title": False, "input_size": True, "probe_size": False, "pretrained_kwarg": False},
    "contract": {"input": True, "output": True, "num_classes_kwarg": False, "classes": True},
    "variant": {"id": True, "title": False, "family": True, "class": True, "kwargs": False, "traits": False,
                "aliases": False, "architecture": False},
    "rubric": {"id": True, "title": False, "marks": True, "variants": False, "performance_share": False,
               "prompts": False, "check_weights": False},
    "comparison": {"id": True, "title": False, "variants": False, "pairs": False, "discussion": False},
    "profile": {"title": False, "image_size": True, **dict.fromkeys(PROFILE_FIELDS, True), "train_images": True,
                "val_images": True, "test_images": True, "grid_images": False, "seed": False, "pretrained": False,
                "separates_variants": False},
    "policy": {"llm_declaration_pattern": False, "llm_declaration_penalty": False},
}


# What the loaders of grader/data/folders.py take in [dataset.options] (a test keeps the two in
# step): written in [dataset] itself, such a key is said to belong there.
LOADER_OPTIONS = ("annotation", "images_dir", "label_table", "mask_format", "mask_suffix", "masks_dir", "remap", "splits")


def _keys(table: dict[str, Any], kind: str, where: str, warnings: list[str]) -> dict[str, Any]:
    """Check `table` against SPEC_KEYS[kind]: a required key missing is a SpecError (naming a
    close unknown key, the likely misspelling); an unknown key is added to `warnings`."""
    known = SPEC_KEYS[kind]
    unknown = [key for key in table if key not in known]
    for key, required in known.items():
        if required and key not in table:
            close = difflib.get_close_matches(key, unknown, n=1, cutoff=0.6)
            hint = f" (it has {close[0]!r}: misspelt?)" if close else ""
            raise SpecError(f"{where} needs {key}{hint}; docs/spec.md lists each table's fields")
    for key in unknown:
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
        if kind == "dataset" and key in LOADER_OPTIONS:
            hint = "; it is an option of the data loader: put it under [dataset.options]"
        elif close:
            hint = f"; did you mean {close[0]!r}?"
        else:
            hint = f"; known here: {', '.join(known)}"
        warnings.append(f"{where} has the unknown key {key!r}, which nothing reads{hint}")
    return table


def _entries(data: dict[str, Any], name: str, path: Path) -> list[dict[str, Any]]:
    """An array of tables ([[name]]), each entry a table."""
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        raise SpecError(f"{path}: {name} must be an array of tables, one [[{name}]] header per entry "
                        f"([{name}] makes a single table), got {value!r}"[:400])
    return value


def _tables(data: dict[str, Any], name: str, path: Path) -> dict[str, dict[str, Any]]:
    """A table of named tables ([name.ID] headers), each a table."""
    value = _table(data.get(name, {}), f"{path}:", f"[{name}]")
    for key, entry in value.items():
        if not isinstance(entry, dict):
            raise SpecError(f"{path}: [{name}.{key}] must be a table, got {name}.{key} = {entry!r}; "
                            f"write a [{name}.{key}] header with its fields below it"[:400])
    return value


# What a variant's `architecture` table may require (grader/grading/architecture.py: check_architecture).
ARCHITECTURE_KEYS = {"bypass_scale": "number", "max_bypass_scale": "number", "long_skips": "numbers",
                     "no_long_skips": "boolean", "residual_adds_min": "integer", "gated_skips": "boolean"}


def _architecture(table: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(table) - set(ARCHITECTURE_KEYS))
    if unknown:
        raise SpecError(f"{where} architecture has unknown keys {unknown}; known: {', '.join(ARCHITECTURE_KEYS)}")
    for key, value in table.items():
        kind = ARCHITECTURE_KEYS[key]
        if kind == "numbers":
            if not isinstance(value, list):
                raise SpecError(f"{where} architecture.{key} must be an array of numbers, got {value!r}")
            for item in value:
                _number(item, where, f"architecture.{key}")
        elif kind == "number":
            _number(value, where, f"architecture.{key}")
        elif kind == "integer":
            _integer(value, where, f"architecture.{key}")
        else:
            _boolean(value, where, f"architecture.{key}")
    return table


def load_spec(path: str | Path | None = None) -> Assignment:
    """Read an assignment spec; without a path, the default one shipped with segrade."""
    path = Path(path) if path is not None else DEFAULT_SPEC
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read the assignment spec {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from None
    warnings: list[str] = []
    try:
        return _parse(data, path, hashlib.sha256(raw).hexdigest(), warnings)
    except KeyError as exc:   # a required field SPEC_KEYS does not list
        raise SpecError(f"{path}: missing required field {exc.args[0]!r}") from None
    except SpecError as exc:
        if not warnings:
            raise
        # A key misspelt earlier in the file is often why the error happened: say both.
        raise SpecError("\n".join((str(exc), "the file also has:", *warnings))) from None


def _parse(data: dict[str, Any], path: Path, sha256: str, warnings: list[str]) -> Assignment:
    _keys(data, "spec", f"{path}: the top level", warnings)
    a = _keys(_table(data["assignment"], f"{path}:", "[assignment]"), "assignment", f"{path}: [assignment]", warnings)
    assignment_id = _string(a["id"], f"{path}: [assignment]", "id")
    dataset = _parse_dataset(_table(data["dataset"], f"{path}:", "[dataset]"), path, warnings)

    families = {}
    for fid, f in _tables(data, "families", path).items():
        where = f"{path}: [families.{fid}]"
        _keys(f, "family", where, warnings)
        size = _integer(f["input_size"], where, "input_size")
        if size < 64 or size % 32:
            raise SpecError(f"{where} input_size is {size}: use a multiple of 32, at least 64")
        probe = f.get("probe_size")
        if probe is not None:
            probe = _integer(probe, where, "probe_size")
            if probe < 32 or probe % 32 or probe > size:
                raise SpecError(f"{where} probe_size is {probe}: use a multiple of 32 from 32 up to "
                                f"the family's input_size ({size})")
        kwarg = f.get("pretrained_kwarg")
        families[fid] = Family(fid, _string(f.get("title", fid), where, "title"), size,
                               None if kwarg is None else _string(kwarg, where, "pretrained_kwarg"), probe)
    c = _keys(_table(data["contract"], f"{path}:", "[contract]"), "contract", f"{path}: [contract]", warnings)
    where = f"{path}: [contract]"
    classes = _table(c["classes"], where, "classes")
    for name, text in classes.items():
        _text(text, where, f"classes.{name}")
    contract = Contract(_text(c["input"], where, "input"), _text(c["output"], where, "output"),
                        _string(c.get("num_classes_kwarg", "num_classes"), where, "num_classes_kwarg"), classes)

    variants = []
    for number, v in enumerate(_entries(data, "variants", path), start=1):
        where = f"{path}: variant {v['id']!r}" if isinstance(v.get("id"), str) else f"{path}: [[variants]] entry {number}"
        _keys(v, "variant", where, warnings)
        vid, family = _string(v["id"], where, "id"), _string(v["family"], where, "family")
        if family not in families:
            raise SpecError(f"{path}: variant {vid!r} names unknown family {family!r}")
        variants.append(Variant(vid, _string(v.get("title", vid), where, "title"), families[family],
                                _string(v["class"], where, "class"),
                                _table(v.get("kwargs", {}), where, "kwargs"),
                                _table(v.get("traits", {}), where, "traits"),
                                _strings(v.get("aliases", []), where, "aliases"),
                                _architecture(_table(v.get("architecture", {}), where, "architecture"), where)))
    if not variants:
        raise SpecError(f"{path}: the spec has no [[variants]]: at least one model to grade is needed")
    ids = [v.id for v in variants]
    if len(set(ids)) != len(ids):
        raise SpecError(f"{path}: variant ids must be unique, got {ids}")

    rubric = tuple(_parse_rubric_item(r, number, path, warnings)
                   for number, r in enumerate(_entries(data, "rubric", path), start=1))
    scored_by: dict[str, str] = {}
    for item in rubric:
        unknown = set(item.variants) - set(ids)
        if unknown:
            raise SpecError(f"{path}: rubric item {item.id!r} names unknown variants {sorted(unknown)}")
        if not 0.0 <= item.performance_share <= 1.0:
            raise SpecError(f"{path}: rubric item {item.id!r}: performance_share must lie in 0..1")
        for vid in item.variants:
            if vid in scored_by:
                raise SpecError(f"{path}: variant {vid!r} is in rubric items {scored_by[vid]!r} and {item.id!r}: "
                                "a variant is scored by one item only")
            scored_by[vid] = item.id
        _check_item_weights(item, [v for v in variants if v.id in item.variants], path)
    for vid in ids:
        if rubric and vid not in scored_by:   # without any rubric the spec only checks, on purpose
            warnings.append(f"{path}: variant {vid!r} is in no rubric item: it is checked and shown, and scores "
                            "nothing; add it to an item's variants if it should")
    profiles = {pid: _parse_profile(pid, p, families, path, warnings)
                for pid, p in _tables(data, "profiles", path).items()}
    comparisons = tuple(_parse_comparison(c, number, ids, {item.id for item in rubric if item.manual}, path, warnings)
                        for number, c in enumerate(_entries(data, "comparisons", path), start=1))

    return Assignment(
        id=assignment_id, title=_string(a.get("title", assignment_id), f"{path}: [assignment]", "title"),
        dataset=dataset, families=families, contract=contract, variants=tuple(variants), rubric=rubric,
        policy=_parse_policy(_table(data.get("policy", {}), f"{path}:", "[policy]"), path, warnings), path=path,
        sha256=sha256, profiles=profiles, comparisons=comparisons, reference=_reference(a.get("reference"), path),
        warnings=tuple(warnings),
    )


def _parse_policy(p: dict[str, Any], path: Path, warnings: list[str]) -> dict[str, Any]:
    where = f"{path}: [policy]"
    _keys(p, "policy", where, warnings)
    pattern = p.get("llm_declaration_pattern")
    if pattern is not None:
        try:
            re.compile(_string(pattern, where, "llm_declaration_pattern"))
        except re.error as exc:
            raise SpecError(f"{where} llm_declaration_pattern is not a valid regular expression ({exc}): "
                            f"{pattern!r}") from None
    if "llm_declaration_penalty" in p:
        _number(p["llm_declaration_penalty"], where, "llm_declaration_penalty")
    return dict(p)


def _reference(value: Any, path: Path) -> Path | None:
    """[assignment] reference: a folder relative to the spec file; for the specs shipped in
    grader/spec/, relative to segrade's bundled files (the reference solutions travel there)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise SpecError(f"{path}: [assignment] reference must be the path of the reference solution, got {value!r}")
    folder = Path(value).expanduser()
    if not folder.is_absolute():
        from grader.shared.resources import bundled_root

        shipped = path.resolve().parent == DEFAULT_SPEC.resolve().parent
        folder = (bundled_root() if shipped else path.parent) / folder
    return folder


def _parse_rubric_item(r: dict[str, Any], number: int, path: Path, warnings: list[str]) -> RubricItem:
    where = f"{path}: rubric item {r['id']!r}" if isinstance(r.get("id"), str) else f"{path}: [[rubric]] entry {number}"
    _keys(r, "rubric", where, warnings)
    rid = _string(r["id"], where, "id")
    return RubricItem(rid, _string(r.get("title", rid), where, "title"), _number(r["marks"], where, "marks"),
                      _strings(r.get("variants", []), where, "variants"),
                      _number(r.get("performance_share", 0.0), where, "performance_share"),
                      _strings(r.get("prompts", []), where, "prompts"),
                      _check_weights(r.get("check_weights", {}), where))


def _check_item_weights(item: RubricItem, variants: list[Variant], path: Path) -> None:
    """A weight the item set for a check none of its variants is scored on would do nothing;
    a variant whose checks all weigh 0 could not share out its check marks."""
    where = f"{path}: rubric item {item.id!r}"
    applicable = {cid for v in variants for cid in v.scored_checks}
    for cid, weight in item.check_weights.items():
        if weight != DEFAULT_CHECK_WEIGHTS[cid] and cid not in applicable:
            raise SpecError(f"{where} check_weights.{cid}: none of its variants ({', '.join(item.variants)}) is "
                            f"scored on {cid}; scored checks: {', '.join(sorted(applicable))}")
    if item.performance_share < 1.0:
        for v in variants:
            if not sum(item.check_weights[cid] for cid in v.scored_checks):
                raise SpecError(f"{where}: every check of variant {v.id!r} weighs 0, so its check marks cannot be "
                                "shared out; give one a weight, or set performance_share = 1")


def _check_weights(value: Any, where: str) -> dict[str, float]:
    """DEFAULT_CHECK_WEIGHTS with the item's own `check_weights = { id = weight }` over them."""
    table = _table(value, where, "check_weights")
    unknown = sorted(set(table) - set(DEFAULT_CHECK_WEIGHTS))
    if unknown:
        raise SpecError(f"{where} check_weights names unknown checks {unknown}; checks that carry marks: "
                        f"{', '.join(DEFAULT_CHECK_WEIGHTS)}")
    weights = dict(DEFAULT_CHECK_WEIGHTS)
    for cid, weight in table.items():
        weights[cid] = _number(weight, where, f"check_weights.{cid}")
        if weights[cid] < 0:
            raise SpecError(f"{where} check_weights.{cid} is {weight}: a weight must be 0 or more")
    return weights


def _parse_comparison(c: dict[str, Any], number: int, variant_ids: list[str], manual_items: set[str], path: Path,
                      warnings: list[str]) -> Comparison:
    where = f"{path}: [[comparisons]] {c['id']!r}" if isinstance(c.get("id"), str) else f"{path}: [[comparisons]] entry {number}"
    _keys(c, "comparison", where, warnings)
    cid = _string(c["id"], where, "id")
    pairs = c.get("pairs", [])
    if not isinstance(pairs, list):
        raise SpecError(f"{where} pairs must be an array of [before, after] pairs, got {pairs!r}")
    pairs = tuple(_strings(pair, where, "pairs") for pair in pairs)
    discussion = c.get("discussion")
    comparison = Comparison(cid, _string(c.get("title", cid), where, "title"),
                            _strings(c.get("variants", []), where, "variants"), pairs,
                            None if discussion is None else _string(discussion, where, "discussion"))
    if bool(comparison.variants) == bool(pairs) or any(len(pair) != 2 for pair in pairs):
        raise SpecError(f"{where} needs either variants = [...] or pairs = [[before, after], ...]")
    unknown = set(comparison.variant_ids) - set(variant_ids)
    if unknown:
        raise SpecError(f"{where} names unknown variants {sorted(unknown)}")
    if comparison.discussion is not None and comparison.discussion not in manual_items:
        raise SpecError(f"{where} discussion = {comparison.discussion!r} is not a manual rubric item")
    return comparison


def _parse_profile(pid: str, p: dict[str, Any], families: dict[str, Family], path: Path,
                   warnings: list[str]) -> Profile:
    where = f"{path}: [profiles.{pid}]"
    _keys(p, "profile", where, warnings)

    def per_family(name: str) -> dict[str, Any]:
        """One value or a table with one per family -> {family: value}."""
        value = p[name]
        if isinstance(value, dict) and set(value) != set(families):
            raise SpecError(f"{where} {name} as a table needs one value per family ({', '.join(families)})")
        return {fid: value[fid] if isinstance(value, dict) else value for fid in families}

    sizes = {fid: _integer(size, where, "image_size") for fid, size in per_family("image_size").items()}
    for fid, size in sizes.items():
        if size < 32 or size % 32:
            raise SpecError(f"{where} image_size for {fid} is {size}: use a multiple of 32")
    settings = {}
    for name in PROFILE_FIELDS:
        for value in per_family(name).values():
            if name == "optimizer" and value not in OPTIMIZERS:
                raise SpecError(f"{where} optimizer must be one of {', '.join(OPTIMIZERS)}")
            if name in ("batch_size", "steps", "eval_every") and _integer(value, where, name) < 1:
                raise SpecError(f"{where} {name} must be at least 1, got {value}")
            if name in ("lr", "weight_decay"):
                _number(value, where, name)
        settings[name] = p[name]  # as written: the profile's hash depends on the form
    counts = {name: _integer(p[name], where, name) for name in ("train_images", "val_images", "test_images")}
    return Profile(id=pid, title=_string(p.get("title", pid), where, "title"), image_size=sizes, settings=settings,
                   train_images=counts["train_images"], val_images=counts["val_images"],
                   test_images=counts["test_images"], grid_images=_integer(p.get("grid_images", 4), where, "grid_images"),
                   seed=_integer(p.get("seed", 0), where, "seed"),
                   pretrained=_boolean(p.get("pretrained", False), where, "pretrained"),
                   separates_variants=_boolean(p.get("separates_variants", True), where, "separates_variants"))


def _parse_dataset(d: dict[str, Any], path: Path, warnings: list[str]) -> DatasetConfig:
    _keys(d, "dataset", f"{path}: [dataset]", warnings)
    class_names = _strings(d["class_names"], f"{path}: [dataset]", "class_names")
    palette = d["palette"]
    if not isinstance(palette, list) or len(palette) != len(class_names) or any(
            not isinstance(c, list) or len(c) != 3 or any(isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= 255
                                                          for x in c) for c in palette):
        raise SpecError(f"{path}: [dataset] needs one RGB palette colour per class name")
    palette = tuple(tuple(colour) for colour in palette)
    kind = d.get("kind", "synthetic")
    if kind not in DATASET_KINDS:
        raise SpecError(f"{path}: [dataset] kind = {kind!r}; use one of {', '.join(DATASET_KINDS)}")
    root = d.get("root")
    if kind != "synthetic" and not root:
        raise SpecError(f"{path}: [dataset] kind = {kind!r} needs root = \"/path/to/the/data\"")
    if root:
        root = Path(_string(root, f"{path}: [dataset]", "root")).expanduser()
        root = root if root.is_absolute() else (path.parent / root)  # relative to the spec file
    synthetic = _table(d.get("synthetic", {}), f"{path}: [dataset]", "synthetic")
    if "test_seed" in synthetic:
        raise SpecError(f"{path}: [dataset.synthetic] must not hold test_seed: the test seed is secret; "
                        "set SEGRADE_TEST_SEED in the grading environment instead")
    _keys(synthetic, "dataset.synthetic", f"{path}: [dataset.synthetic]", warnings)
    thin = _strings(d.get("thin_classes", []), f"{path}: [dataset]", "thin_classes")
    if set(thin) - set(class_names):
        raise SpecError(f"{path}: [dataset] thin_classes names unknown classes {sorted(set(thin) - set(class_names))}")
    channels = _integer(d.get("channels", 3), f"{path}: [dataset]", "channels")
    if channels not in CHANNELS:
        raise SpecError(f"{path}: [dataset] channels = {channels}: use 3 for RGB images or 1 for grayscale")
    return DatasetConfig(kind=kind, class_names=class_names, palette=palette, root=root,
                         options=_table(d.get("options", {}), f"{path}: [dataset]", "options"),
                         train_seed=_integer(synthetic.get("train_seed", 1), f"{path}: [dataset.synthetic]", "train_seed"),
                         val_seed=_integer(synthetic.get("val_seed", 2), f"{path}: [dataset.synthetic]", "val_seed"),
                         thin_classes=thin, channels=channels)
