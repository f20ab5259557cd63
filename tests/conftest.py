import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED_DATA.exists():
    SHARED_DATA = Path(os.environ.get("ICM_RM_SHARED_DATA", "../shared/data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared datasets not found at {SHARED_DATA} (set ICM_RM_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_thread():
    """Tiny-model ops are far below OpenMP's break-even; on a shared 2-core machine 2 threads run them ~10× slower.
    A module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_tok():
    from testkit.tiny_models import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_model(tiny_tok):
    from testkit.tiny_models import tiny_llama

    return tiny_llama(tiny_tok)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from testkit.tiny_models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"))
