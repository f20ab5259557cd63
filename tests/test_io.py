"""Process-memory helpers of icm_rm.infra.io (the pipeline reports each stage's peak RSS with them)."""

from pathlib import Path

import pytest


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak-RSS reset needs Linux /proc")
def test_peak_rss_measures_the_block_after_a_reset():
    import numpy as np

    from icm_rm.infra.io import peak_rss_mib, release_memory, reset_peak_rss

    reset_peak_rss()
    before = peak_rss_mib()
    block = np.ones(40 * 2**20)  # 320 MiB, every page touched
    grown = peak_rss_mib()
    del block
    release_memory()
    reset_peak_rss()
    assert grown - before > 250 and peak_rss_mib() < grown - 250
