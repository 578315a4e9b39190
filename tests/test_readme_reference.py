"""The README's reference-result section is rendered from the committed results
(scripts/readme_reference.py): rendering it again from fit.json and friends gives the
README's text exactly, so no number in it can drift from the results."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_reference_section_is_the_rendering_of_the_committed_results():
    spec = importlib.util.spec_from_file_location("readme_reference", ROOT / "scripts" / "readme_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    readme = (ROOT / "README.md").read_text()
    assert mod.BEGIN in readme and mod.END in readme, "the README lost its reference markers"
    block = readme.split(mod.BEGIN, 1)[1].split(mod.END, 1)[0]
    assert block == "\n" + mod.render(), "README reference section is stale: python scripts/readme_reference.py --write"
