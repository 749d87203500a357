"""Code similarity for a class of generated submissions (default 300) on this machine.

    .venv/bin/python benchmarks/bench_similarity.py [--n 300] [--copies 6] [--baseline-n N]

Writes a graded-like folder (OUT/<id>/code/*.py as `segrade grade` keeps it, and a results.json
whose variants carry generated layer lists) of students who each wrote their own U-Nets from one
starter file (pasted in, as students do): per student, random identifier names, widths,
normalisation, activation, upsampling, helper functions and class order. `--copies` of them are
disguised copies of another (identifiers renamed, comments changed, classes reordered).

Times `segrade similarity`'s engine (grader.similarity.run_similarity: textual + structural +
the page and the CSV), cold (every submission's code tokenised) and again with the tokens kept
beside the code (as `segrade grade` keeps them at grading time), against a baseline measured in
the same run: copydetect's own
CopyDetector over the same files and boilerplate (every pair compared), on `--baseline-n`
submissions (default: all), and prints the ratio and whether the planted copies rank first.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import string
import tempfile
import time
from pathlib import Path

from grader.shared.resources import reference_dir
from grader.report.similarity import write_similarity
from grader.similarity import SimilarityOptions, run_similarity
from grader.similarity.code import code_of

ROOT = Path(__file__).resolve().parent.parent
STARTER = ROOT / "tests" / "data" / "similarity" / "starter"
VARIANTS = ("unet", "unet_noskip", "unet_residual", "unet_attention")


def _name(rng: random.Random, kind: str) -> str:
    words = ["conv", "block", "enc", "dec", "feat", "up", "down", "mid", "layer", "stage", "unit", "net", "seg",
             "path", "level", "head", "core", "branch", "gate", "att", "res", "skip", "hidden", "tmp", "out"]
    name = "_".join(rng.sample(words, rng.randint(1, 2))) + (str(rng.randint(0, 9)) if rng.random() < 0.3 else "")
    return "".join(w.capitalize() for w in name.split("_")) if kind == "class" else name


def student(rng: random.Random) -> dict:
    """One student's design choices and names."""
    return {"base": rng.choice([16, 32, 48, 64]), "norm": rng.choice(["BatchNorm2d", "GroupNorm", "InstanceNorm2d", None]),
            "act": rng.choice(["ReLU", "LeakyReLU", "GELU", "ELU"]), "up": rng.choice(["transpose", "bilinear"]),
            "kernel": rng.choice([3, 3, 3, 5]), "dropout": rng.choice([0, 0, 0.1, 0.2, 0.3]),
            "bias": rng.choice([True, False]), "depth": rng.choice([4, 4, 4, 5]),
            "names": {k: _name(rng, "class") for k in ("Block", "Up", "Gate", "Res")}
            | {k: _name(rng, "var") for k in ("x", "skip", "feats", "w", "i", "g", "helper")},
            "helpers": rng.randint(6, 12), "order": rng.sample(range(4), 4), "seed": rng.random()}


def expression(rng: random.Random, v: str, depth: int = 3) -> str:
    """A random expression tree over the input tensor: every student's own arithmetic."""
    if depth == 0 or rng.random() < 0.25:
        return rng.choice([v, str(rng.randint(1, 99)), f"{v}.shape[{rng.randint(0, 3)}]", f"{rng.random():.2f}"])
    e = lambda: expression(rng, v, depth - 1)  # noqa: E731
    return rng.choice([
        f"({e()} {rng.choice(['+', '-', '*', '/', '//', '**'])} {e()})",
        f"torch.{rng.choice(['abs', 'exp', 'tanh', 'sqrt', 'log1p', 'sigmoid', 'relu', 'clamp_min'])}({e()}"
        + (", 0)" if rng.random() < 0.2 else ")"),
        f"{e()}.{rng.choice(['mean', 'sum', 'max', 'float', 'detach', 'clone', 'flatten'])}()",
        f"F.{rng.choice(['pad', 'dropout', 'softplus', 'gelu'])}({e()})",
        f"[{e()} for _ in range({rng.randint(1, 5)})][{rng.randint(0, 0)}]",
        f"({e()} if {e()} > {rng.randint(0, 9)} else {e()})",
    ])


def statement(rng: random.Random, v: str) -> str:
    """A random line of the kind students add (checks, reshapes, bookkeeping)."""
    a, b = rng.choice(["h", "t", "y", "z", "tmp", "acc"]), rng.randint(1, 9)
    if rng.random() < 0.7:
        return f"{a} = {expression(rng, v)}"
    return rng.choice([
        f"{a} = {v}.shape[{rng.randint(0, 3)}] * {b}",
        f"assert {v}.dim() == {rng.choice([3, 4])}, 'expected {b}D input'",
        f"{a} = torch.{rng.choice(['mean', 'amax', 'sum', 'std'])}({v}, dim={rng.randint(0, 3)}, keepdim={rng.choice([True, False])})",
        f"if {v}.numel() > {b * 1000}:\n            {a} = {v}.detach().float().{rng.choice(['norm', 'abs', 'max'])}()",
        f"{a} = [{v}.size(i) for i in range({rng.randint(1, 4)})]",
        f"{a} = F.{rng.choice(['avg_pool2d', 'max_pool2d'])}({v}, {b % 3 + 1}) if {v}.shape[-1] > {b * 8} else {v}",
        f"{a} = {v}.{rng.choice(['view', 'reshape'])}({v}.shape[0], -1).{rng.choice(['mean', 'sum'])}(dim={rng.randint(0, 1)})",
        f"while {a if False else 'False'} and {b} < {rng.randint(10, 99)}:\n            break",
    ])


def helper(rng: random.Random, name: str) -> str:
    lines = [statement(rng, "x").replace("\n            ", "\n    ") for _ in range(rng.randint(4, 9))]
    return f"def {name}(x, scale={rng.randint(1, 5)}):\n    " + "\n    ".join(lines) + f"\n    return x * scale + {rng.randint(0, 3)}\n"


def code(s: dict, rng: random.Random) -> str:
    n = s["names"]
    norm = (f"nn.{s['norm']}({'8, ' if s['norm'] == 'GroupNorm' else ''}{{c}})" if s["norm"] else "nn.Identity()")
    act = f"nn.{s['act']}()"
    k, p = s["kernel"], s["kernel"] // 2
    comment = lambda: f"# {' '.join(rng.choice(['the', 'a', 'block', 'we', 'use', 'here', 'feature', 'map', 'now', 'then', 'x']) for _ in range(rng.randint(3, 9)))}"  # noqa: E731
    classes = [
        f'''class {n["Block"]}(nn.Module):
    {comment()}
    def __init__(self, cin, cout):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, {k}, padding={p}, bias={s["bias"]}), {norm.format(c="cout")}, {act},
                                  nn.Conv2d(cout, cout, {k}, padding={p}, bias={s["bias"]}), {norm.format(c="cout")}, {act})

    def forward(self, {n["x"]}):
        return self.body({n["x"]})
''',
        f'''class {n["Res"]}(nn.Module):
    {comment()}
    def __init__(self, cin, cout):
        super().__init__()
        self.inner = {n["Block"]}(cin, cout)
        self.short = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, {n["x"]}):
        return self.inner({n["x"]}) + self.short({n["x"]})
''',
        f'''class {n["Gate"]}(nn.Module):
    {comment()}
    def __init__(self, c, {n["g"]}_c):
        super().__init__()
        self.wx = nn.Conv2d(c, c // 2, 1)
        self.wg = nn.Conv2d({n["g"]}_c, c // 2, 1)
        self.psi = nn.Sequential(nn.Conv2d(c // 2, 1, 1), nn.Sigmoid())

    def forward(self, {n["x"]}, {n["g"]}):
        {n["g"]} = F.interpolate({n["g"]}, size={n["x"]}.shape[-2:], mode="bilinear", align_corners=False)
        return {n["x"]} * self.psi(F.relu(self.wx({n["x"]}) + self.wg({n["g"]})))
''',
        f'''class UNet(nn.Module):
    {comment()}
    def __init__(self, n_classes=13, use_skip=True, residual=False, attention=False):
        super().__init__()
        {n["w"]} = [{s["base"]} * 2 ** {n["i"]} for {n["i"]} in range({s["depth"] + 1})]
        B = {n["Res"]} if residual else {n["Block"]}
        self.use_skip, self.attention = use_skip, attention
        self.downs = nn.ModuleList([B(3 if {n["i"]} == 0 else {n["w"]}[{n["i"]} - 1], {n["w"]}[{n["i"]}]) for {n["i"]} in range({s["depth"]})])
        self.bottom = nn.Sequential(B({n["w"]}[-2], {n["w"]}[-1]), nn.Dropout2d({s["dropout"]}))
        self.ups = nn.ModuleList([{"nn.ConvTranspose2d(" + n["w"] + "[" + n["i"] + " + 1], " + n["w"] + "[" + n["i"] + "], 2, stride=2)" if s["up"] == "transpose" else "nn.Sequential(nn.Upsample(scale_factor=2, mode='bilinear'), nn.Conv2d(" + n["w"] + "[" + n["i"] + " + 1], " + n["w"] + "[" + n["i"] + "], 1))"} for {n["i"]} in reversed(range({s["depth"]}))])
        self.gates = nn.ModuleList([{n["Gate"]}({n["w"]}[{n["i"]}], {n["w"]}[{n["i"]}]) for {n["i"]} in reversed(range({s["depth"]}))]) if attention else None
        self.decs = nn.ModuleList([B({n["w"]}[{n["i"]}] * (2 if use_skip else 1), {n["w"]}[{n["i"]}]) for {n["i"]} in reversed(range({s["depth"]}))])
        self.head = nn.Conv2d({n["w"]}[0], n_classes, 1)

    def forward(self, {n["x"]}):
        {n["feats"]} = []
        for down in self.downs:
            {n["x"]} = down({n["x"]})
            {n["feats"]}.append({n["x"]})
            {n["x"]} = F.max_pool2d({n["x"]}, 2)
        {n["x"]} = self.bottom({n["x"]})
        for j, (up, dec) in enumerate(zip(self.ups, self.decs)):
            {n["x"]} = up({n["x"]})
            {n["skip"]} = {n["feats"]}.pop()
            if self.attention:
                {n["skip"]} = self.gates[j]({n["skip"]}, {n["x"]})
            {n["x"]} = dec(torch.cat([{n["skip"]}, {n["x"]}], 1) if self.use_skip else {n["x"]})
        return self.head({n["x"]})
''']
    helpers = [helper(rng, f"{n['helper']}_{i}") for i in range(s["helpers"])]
    noise = lambda: "\n        ".join(statement(rng, n["x"]) for _ in range(rng.randint(1, 3)))  # noqa: E731
    classes = [c.replace(f"    def forward(self, {n['x']}):\n", f"    def forward(self, {n['x']}):\n        {noise()}\n", 1)
               .replace(f"    def forward(self, {n['x']}, {n['g']}):\n", f"    def forward(self, {n['x']}, {n['g']}):\n        {noise()}\n", 1)
               for c in classes]
    body = "\n\n".join(classes[i] for i in s["order"])
    header = f'"""{comment()[2:]}"""\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n'
    return header + body + "\n\n" + "\n\n".join(helpers)


def layers(s: dict, variant: str) -> list[str]:
    """A layer list as grader.shared.structure.layers would record it for this design."""
    w = [s["base"] * 2 ** i for i in range(s["depth"] + 1)]
    k, p = s["kernel"], s["kernel"] // 2
    norm = lambda c: {None: "Identity()", "BatchNorm2d": f"BatchNorm2d({c}, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)",  # noqa: E731
                      "GroupNorm": f"GroupNorm(8, {c}, eps=1e-05, affine=True)",
                      "InstanceNorm2d": f"InstanceNorm2d({c}, eps=1e-05, momentum=0.1, affine=False, track_running_stats=False)"}[s["norm"]]
    conv = lambda a, b, kk, pp, bias: f"Conv2d({a}, {b}, kernel_size=({kk}, {kk}), stride=(1, 1){', padding=(%d, %d)' % (pp, pp) if pp else ''}{'' if bias else ', bias=False'})"  # noqa: E731

    def block(a, b):
        out = [conv(a, b, k, p, s["bias"]), norm(b), f"{s['act']}()", conv(b, b, k, p, s["bias"]), norm(b), f"{s['act']}()"]
        if variant == "unet_residual":
            out.append(conv(a, b, 1, 0, True) if a != b else "Identity()")
        return out

    out = []
    for i in range(s["depth"]):
        out += block(3 if i == 0 else w[i - 1], w[i])
    out += block(w[-2], w[-1]) + [f"Dropout2d(p={s['dropout']}, inplace=False)"]
    for i in reversed(range(s["depth"])):
        out += [f"ConvTranspose2d({w[i + 1]}, {w[i]}, kernel_size=(2, 2), stride=(2, 2))"] if s["up"] == "transpose" \
            else ["Upsample(scale_factor=2.0, mode='bilinear')", conv(w[i + 1], w[i], 1, 0, True)]
    if variant == "unet_attention":
        for i in reversed(range(s["depth"])):
            out += [conv(w[i], w[i] // 2, 1, 0, True), conv(w[i], w[i] // 2, 1, 0, True), conv(w[i] // 2, 1, 1, 0, True), "Sigmoid()"]
    for i in reversed(range(s["depth"])):
        out += block(w[i] * (1 if variant == "unet_noskip" else 2), w[i])
    return out + [conv(w[0], 13, 1, 0, True)]


def disguise(text: str, s: dict, rng: random.Random) -> tuple[str, dict]:
    """The same code with its identifiers renamed, its comments rewritten and its top-level
    definitions reordered."""
    import re

    for old in sorted(s["names"].values(), key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(old)}\b", _name(rng, "class" if old[0].isupper() else "var") + "_", text)
    text = re.sub(r"#[^\n]*", lambda m: "# " + " ".join(rng.sample(["see", "lecture", "notes", "my", "version"], 3)), text)
    header, _, rest = text.partition("\n\n")
    blocks = re.split(r"\n(?=class |def )", rest)
    rng.shuffle(blocks)
    return header + "\n\n" + "\n".join(blocks), s


def generate(out: Path, n: int, copies: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    starter = code_of(STARTER)
    base = json.loads((ROOT / "tests" / "data" / "results_small.json").read_text())
    template = next(v for v in base["variants"] if v["variant_id"] == "unet")
    designs, planted = {}, []
    ids = [f"s{i:03d}_{''.join(rng.choices(string.ascii_lowercase, k=4))}" for i in range(n)]
    for index, sid in enumerate(ids):
        if index >= n - copies:  # a disguised copy of an earlier student
            source = ids[rng.randrange(0, n - copies)]
            text, design = disguise(*designs[source], rng)
            planted.append((source, sid))
        else:
            design = student(rng)
            text = code(design, rng)
        designs[sid] = (text, design)
        folder = out / sid
        (folder / "code").mkdir(parents=True)
        (folder / "code" / "starter.py").write_text(starter)
        (folder / "code" / "model.py").write_text(text)
        results = dict(base, submission={**base["submission"], "id": sid}, variants=[
            {**template, "variant_id": v, "figures": {**template["figures"], "structure": {"layers": layers(design, v)}}}
            for v in VARIANTS])
        (folder / "results.json").write_text(json.dumps(results))
    return planted


def baseline(out: Path, ids: list[str]) -> float:
    from copydetect import CopyDetector

    with tempfile.TemporaryDirectory() as tmp:
        for sid in ids:
            (Path(tmp) / f"{sid}.py").write_text((out / sid / "code" / "model.py").read_text()
                                                 + (out / sid / "code" / "starter.py").read_text())
        boiler = Path(tmp) / "_boilerplate"
        boiler.mkdir()
        (boiler / "starter.py").write_text(code_of(STARTER))
        (boiler / "reference.py").write_text(code_of(reference_dir()))
        started = time.perf_counter()
        detector = CopyDetector(test_dirs=[tmp], boilerplate_dirs=[str(boiler)], extensions=["py"], silent=True,
                                autoopen=False, display_t=0.5)
        detector.test_files = [f for f in detector.test_files if "_boilerplate" not in f]
        detector.ref_files = list(detector.test_files)
        detector.run()
        detector.get_copied_code_list()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--copies", type=int, default=6)
    parser.add_argument("--baseline-n", type=int, default=None)
    args = parser.parse_args()
    import torch

    out = Path(tempfile.mkdtemp(prefix="bench-similarity-"))
    try:
        planted = generate(out, args.n, args.copies)
        started = time.perf_counter()
        result = write_similarity(out, run_similarity(out, SimilarityOptions(starter=(STARTER,))),
                                  SimilarityOptions(starter=(STARTER,)))
        ours = time.perf_counter() - started
        started = time.perf_counter()  # again: the tokens are now kept beside the code, as grading keeps them
        write_similarity(out, run_similarity(out, SimilarityOptions(starter=(STARTER,))),
                         SimilarityOptions(starter=(STARTER,)))
        warm = time.perf_counter() - started
        rank = {frozenset((p.a, p.b)): i for i, p in enumerate(result.pairs, 1)}
        flagged = {frozenset((p.a, p.b)) for p in result.flagged}
        ranks = sorted(rank.get(frozenset(pair), 0) for pair in planted)
        found = sum(frozenset(pair) in flagged for pair in planted)
        ids = sorted(p.name for p in out.iterdir() if p.is_dir())[:args.baseline_n or args.n]
        base = baseline(out, ids)
        print(f"{args.n} generated submissions ({len(planted)} disguised copies), {torch.get_num_threads()} threads")
        print(f"segrade similarity (textual + structural + page + csv)  {ours:7.1f} s  "
              f"({len(result.flagged)} flagged; planted copies flagged {found}/{len(planted)}, ranked {ranks})")
        print(f"  again, tokens kept (as after segrade grade)            {warm:7.1f} s")
        print(f"baseline: copydetect CopyDetector, {len(ids)} submissions     {base:7.1f} s")
        scale = (args.n * (args.n - 1)) / max(1, len(ids) * (len(ids) - 1))
        print(f"ratio segrade/copydetect {ours / (base * scale):.2f}"
              + (f" (baseline scaled x{scale:.1f} from {len(ids)} submissions, all pairs)" if scale != 1 else ""))
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
