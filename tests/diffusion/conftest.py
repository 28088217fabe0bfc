import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    """These tests run many small ops; intra-op threads only add contention on a shared 2-core box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
