"""The training loop's data-parallel pieces that need no second process: the unused-parameter probe and the
`train.processes` field. The 2-process runs themselves are in tests/test_end_to_end.py."""
from __future__ import annotations

import argparse

import pytest
import torch

from mcd.cli import CLIError
from mcd.data.dataset import VideoGroupedBatches
from mcd.model import MCD
from mcd.training.train import DistEnv, run, unused_parameters
from tests.conftest import make_batch, small_config


class OneBatchLoader:
    """What the probe reads: an iterable whose first item has `model_inputs()`; starting it draws from the global
    random stream, as a torch DataLoader's iterator does."""

    def __init__(self, inputs: dict):
        self.inputs = inputs

    def __iter__(self):
        torch.rand(1)
        return iter([self])

    def model_inputs(self) -> dict:
        return dict(self.inputs)


def test_probe_names_the_switched_off_branches_and_leaves_the_run_as_it_was():
    torch.manual_seed(0)
    full = MCD(small_config())
    assert unused_parameters(full, OneBatchLoader(make_batch(full.config))) == []

    no_kd = MCD(small_config(lambda_kd=0))       # some approximation layers learn only from the distillation
    state = torch.get_rng_state()
    unused = unused_parameters(no_kd, OneBatchLoader(make_batch(no_kd.config)))
    assert torch.equal(torch.get_rng_state(), state)                  # the random stream is where it was
    assert all(p.grad is None for p in no_kd.parameters())            # and the probe's gradients are gone
    assert unused and all(n.startswith("approximation.") for n in unused)


def test_dist_env_outside_torchrun_is_one_process():
    dist = DistEnv()
    assert (dist.world_size, dist.rank, dist.enabled, dist.is_main) == (1, 0, False, True)
    assert dist.union(["b", "a", "b"]) == ["a", "b"]
    before = torch.get_num_threads()
    with dist.main_rank_threads():
        assert torch.get_num_threads() == before


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "true", "two"])
def test_processes_must_be_a_whole_number_of_at_least_one(value, tmp_path):
    args = argparse.Namespace(config="configs/synth-quick.json", set=[f"train.processes={value}"], out=None,
                              resume=False, quiet=True)
    with pytest.raises(CLIError, match="train.processes must be a whole number"):
        run(args)


class Record:
    def __init__(self, video_id: str):
        self.video_id = video_id


@pytest.mark.parametrize("mirror", [False, True])
def test_ranks_share_out_the_clips_of_one_process_batches(mirror):
    """Each step of two ranks covers exactly the questions of that step of one process, in whole clips."""
    sizes = [3, 5, 2, 4, 4, 1, 6, 3, 2, 5, 3]         # questions per clip
    records = [Record(f"v{v}") for v, n in enumerate(sizes) for _ in range(n)]
    for epoch in (0, 1):
        one = VideoGroupedBatches(records, 8, shuffle=True, seed=3, mirror=mirror)
        ranks = [VideoGroupedBatches(records, 8, shuffle=True, seed=3, rank=r, world_size=2, mirror=mirror)
                 for r in (0, 1)]
        for sampler in (one, *ranks):
            sampler.set_epoch(epoch)
        steps = list(one)
        shares = [list(r) for r in ranks]
        assert len(shares[0]) == len(shares[1]) == len(len_ok := [b for b in steps if n_clips(b, records) >= 2])
        for whole, a, b in zip(len_ok, *shares):
            assert sorted(a + b) == sorted(whole) and a and b
            assert not {clip(i, records) for i in a} & {clip(i, records) for i in b}   # whole clips to each rank
    assert len(one) > 2


def clip(item, records) -> str:
    return records[item[0] if isinstance(item, tuple) else item].video_id


def n_clips(batch, records) -> int:
    return len({clip(i, records) for i in batch})
