"""The family registry: every family declares itself in its own package, nothing else names one,
and a test-only family plugs in through the registry alone (session, command line, nodes)."""
import ast
import importlib
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import toy_family
from comfy_stand_ins import ComfyStandIns, link_weights
from memvos_core.command.cli import main
from memvos_core.config import MemoryConfig, all_settings
from memvos_core.families import registry
from memvos_core.network import load_network
from memvos_core.network.synthetic import synthetic_state_dict
from pack_loader import pack_for_tests
from session_helpers import moving_discs, session_with_keys
from workflow_executor import outputs_of

ROOT = Path(__file__).resolve().parents[1]
PACK = pack_for_tests()

# A family's own modules outside memvos_core/families/<name>/: its network and memory modules.
FAMILY_MODULES = {m for f in registry.families() for m in f.own_modules}


def _outside_files():
    for folder in ("memvos_core", "nodes"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith("memvos_core/families/") and rel not in FAMILY_MODULES:
                yield rel, path


def _docstrings(tree):
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                   ast.ClassDef)))]
    return {id(n.body[0].value) for n in nodes
            if n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def family_names_in(source):
    """Where code names a family: a string that is a family id, an identifier containing one, or
    an import of a family's modules (prose in docstrings and comments may mention them)."""
    ids = [f.name for f in registry.families()]
    word = re.compile(rf"({'|'.join(ids)})", re.IGNORECASE)
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if node.value.strip().lower() in ids:
                found.append((line, repr(node.value)))
        elif isinstance(node, ast.Name) and word.search(node.id):
            found.append((line, node.id))
        elif isinstance(node, ast.Attribute) and word.search(node.attr):
            found.append((line, node.attr))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.arg)):
            name = node.arg if isinstance(node, ast.arg) else node.name
            if word.search(name):
                found.append((line, name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            found += [(line, n) for n in names if word.search(n)]
    return found


def test_no_family_is_named_outside_its_own_modules():
    offenders = [f"{rel}:{line}: {what}" for rel, path in _outside_files()
                 for line, what in family_names_in(path.read_text(encoding="utf-8"))]
    assert not offenders, "ask memvos_core.families.registry instead:\n" + "\n".join(offenders)


def test_the_rule_catches_what_it_should():
    assert family_names_in('if family == "xmem":\n    pass\n')
    assert family_names_in("from .network.cutie import CutieNetwork\n")
    assert family_names_in("cutie_only = 1\n")
    assert not family_names_in('"""XMem and Cutie in prose are fine."""\nx = 1  # so is XMem here\n')


def test_every_family_declares_its_files_settings_and_loads_its_own_weights():
    names = [s.name for s in all_settings()]
    assert len(names) == len(set(names)) == len(MemoryConfig.names())
    for family in registry.families():
        assert family.weights, family.name
        assert all((ROOT / m).is_file() for m in family.own_modules), family.own_modules
        for w in family.weights:
            assert w.family == family.name and w.url.startswith("https://") and w.code_licence and w.weights_licence
        for s in family.settings:
            assert s.help and s.problem(s.default) is None and s.input_name
        for variant in family.variants:
            network = load_network(synthetic_state_dict(family=family.name, variant=variant))
            assert network.family == family.name and hasattr(network, "dims")


def test_two_equal_claims_are_refused_as_a_mix():
    state = {**synthetic_state_dict(), toy_family.KEY: torch.zeros(2, 3, 1, 1)}
    registry.register(toy_family.FAMILY)
    try:
        with pytest.raises(ValueError, match=r"mixes XMem keys \(key_encoder\.\*\) and Toy keys"):
            load_network(state, source_name="odd.pth")
    finally:
        registry.unregister(toy_family.NAME)


# --------------------------------------------------------------- the toy family, end to end

def _registries():
    return [registry, importlib.import_module(f"{PACK.__name__}.memvos_core.families.registry")]


@pytest.fixture()
def toy(tmp_path):
    for r in _registries():
        r.register(toy_family.FAMILY)
    path = tmp_path / "toy.safetensors"
    save_file(synthetic_state_dict(family=toy_family.NAME), str(path))
    yield path
    for r in _registries():
        r.unregister(toy_family.NAME)


def test_toy_family_runs_a_session(toy):
    from memvos_core.runtime.model import load_model
    model = load_model(str(toy))
    assert model.family == "toy" and model.name == "toy.safetensors"
    frames, labels = moving_discs(num_frames=5, height=32, width=32)
    session = session_with_keys(model, frames, labels, [0], internal_size=-1)
    session, result = session.propagate(frames, direction="forward")
    assert list(result.frame_indices) == list(range(5))
    # the toy carries frame 0's labels forward unchanged
    assert all(torch.equal(result.labels(t).cpu(), labels[0].to(result.labels(t).dtype)) for t in range(5))


def test_toy_family_runs_on_the_command_line(toy, tmp_path):
    from PIL import Image
    import numpy as np
    frames, labels = moving_discs(num_frames=4, height=32, width=32)
    (tmp_path / "f").mkdir()
    (tmp_path / "m").mkdir()
    for t in range(4):
        Image.fromarray((frames[t].numpy() * 255).astype(np.uint8)).save(tmp_path / "f" / f"{t:05d}.png")
    Image.fromarray(labels[0].numpy()).convert("P").save(tmp_path / "m" / "00000.png")  # indexed: index = id
    rc = main(["--frames", str(tmp_path / "f"), "--masks", str(tmp_path / "m"), "--out", str(tmp_path / "o"),
               "--weights", str(toy), "--size", "-1", "--device", "cpu", "--quiet"])
    assert rc == 0
    # the toy carries frame 0's labels forward unchanged
    assert all(np.array_equal(np.array(Image.open(tmp_path / "o" / f"{t:05d}.png")), labels[0].numpy())
               for t in range(4))


def test_toy_family_runs_through_the_nodes(toy, tmp_path):
    from comfy_stand_ins import tiny_clip
    stand_ins = ComfyStandIns(tmp_path / "comfyui")
    link_weights(str(toy), str(Path(stand_ins.dirs["models"]) / "memvos"), "toy.safetensors")
    nodes = PACK.NODE_CLASS_MAPPINGS
    with pytest.MonkeyPatch.context() as mp:
        stand_ins.install(mp)
        load = nodes["MemVOSLoadModel"]
        (model,) = outputs_of(load, load().load("toy.safetensors", "cpu", "auto"))
        assert model.family == "toy"
        new = nodes["MemVOSNewSession"]
        (session,) = outputs_of(new, new().create(model, internal_size=32))
        frames, masks = tiny_clip()
        add = nodes["MemVOSAddAnnotation"]
        (session,) = outputs_of(add, add().add(session, frames, masks[1], 0, 1))
        out = nodes["MemVOSPropagate"]().propagate(session, frames, "forward", 0, -1, 0, 12.0)
        result = outputs_of(nodes["MemVOSPropagate"], out)
        assert result[0].forward_state.engine_meta["family"] == "toy"


def test_readme_lists_every_setting_and_known_weight_file():
    from memvos_core.config import settings_table
    from memvos_core.weights import KNOWN_CHECKPOINTS
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings_table() in readme, "regenerate the table: python -c 'from memvos_core.config import " \
                                       "settings_table; print(settings_table())'"
    assert all(f"| `{name}` |" in readme for name in KNOWN_CHECKPOINTS)
