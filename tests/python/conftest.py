"""pytest set-up for the Python tests: make scripts/ importable (standin_model, reference_pipeline)."""
import os
import sys

SCRIPTS = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A tiny bundle exported once per test session; returns (directory, eager StandinModel)."""
    from standin_model.config import get_config
    from standin_model.export import build_random, export_bundle
    out = str(tmp_path_factory.mktemp("bundle") / "tiny")
    model = build_random(get_config("tiny"), seed=0)
    man = export_bundle(model, out, name="tiny", check=True, log=lambda *a: None)
    return out, model, man


@pytest.fixture(autouse=True)
def _grad_mode_is_restored():
    """Autograd's switch is global to the thread: a test that turns it off must not decide other tests' results."""
    enabled = torch.is_grad_enabled()
    yield
    torch.set_grad_enabled(enabled)
