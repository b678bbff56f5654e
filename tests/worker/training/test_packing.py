import pytest
import torch

from worker.training.data import ChatExample, collate
from worker.training.packing import block_causal_mask, first_fit_decreasing, pack


def _example(line: int, p: int, r: int, rr: int) -> ChatExample:
    base = 100 * line
    return ChatExample(
        line=line,
        prompt_ids=list(range(base, base + p)),
        response_ids=list(range(base + 50, base + 50 + r)),
        response_mask=[0] + [1] * (r - 1) if r else [],
        refusal_ids=list(range(base + 80, base + 80 + rr)),
    )


def test_first_fit_decreasing_fills_bins_longest_first() -> None:
    assert first_fit_decreasing([5, 3, 9, 4, 1], capacity=9) == [[2], [0, 3], [1, 4]]
    assert first_fit_decreasing([12, 2], capacity=9) == [[0], [1]]  # too long: a bin of its own


def test_pack_lays_out_segments_with_restarting_positions() -> None:
    examples = [_example(1, 2, 3, 3), _example(2, 6, 4, 2), _example(3, 1, 2, 1)]  # lengths 5, 10, 3
    batch = pack(examples, pad_id=0)
    assert batch.input_ids.shape == (2, 10)  # no row longer than the longest sample, fewer rows than samples
    assert batch.segment_ids.tolist() == [[1] * 10, [0] * 5 + [2] * 3 + [-1] * 2]
    assert batch.position_ids[1].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 0, 1]
    assert batch.input_ids[1, :5].tolist() == [100, 101, 150, 151, 152]
    assert batch.target_mask[1].tolist() == [0, 0, 0, 1, 1, 0, 0, 1, 0, 0]
    assert batch.is_prompt[1].tolist() == [True, True, False, False, False, True, False, False, False, False]
    assert batch.prompt_end.tolist() == [[1, 1], [0, 5], [1, 5]]
    assert batch.lines == [1, 2, 3] and batch.n_refusal.tolist() == [3, 2, 1]
    # refusal queries: y_r[:-1] of each sample in its own row, positions continuing its prompt
    assert batch.ref_segment.tolist() == [[1, -1], [0, 0]]
    assert batch.ref_ids.tolist() == [[280, 0], [180, 181]]
    assert batch.ref_next.tolist()[1] == [181, 182] and batch.ref_positions.tolist()[1] == [2, 3]
    assert batch.first_refusal.tolist() == [180, 280, 380]
    # fewer tokens than the padded batch of the same samples
    assert batch.input_ids.numel() < collate(examples, pad_id=0).input_ids.numel()


def test_naive_refusal_packs_prompt_and_refusal_as_targets() -> None:
    examples = [_example(1, 2, 3, 3), _example(2, 4, 1, 2)]
    naive = pack(examples, pad_id=0, naive_refusal=True).naive_refusal
    assert naive is not None
    assert naive.target_mask.sum().item() == 5 and naive.lines == [1, 2]
    assert naive.input_ids[0].tolist() == [200, 201, 202, 203, 280, 281]


def test_pack_rejects_an_empty_prompt() -> None:
    with pytest.raises(ValueError):
        pack([_example(1, 0, 3, 2)], pad_id=0)


def test_block_causal_mask_sees_own_segment_only() -> None:
    seg = torch.tensor([[0, 0, 1, 1, -1]])
    allowed = block_causal_mask(seg, seg, 0, torch.float32)[0, 0] == 0
    assert allowed.int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 0, 1],
    ]
    # queries after 2 cached keys: the cache is fully visible to its segment, the new keys causally
    keys = torch.tensor([[1, 0, 1, 1]])
    queries = torch.tensor([[1, 1]])
    allowed = block_causal_mask(queries, keys, 2, torch.float32)[0, 0] == 0
    assert allowed.int().tolist() == [[1, 0, 1, 0], [1, 0, 1, 1]]


def test_wider_rows_take_more_samples_per_row() -> None:
    examples = [_example(1, 2, 3, 3), _example(2, 6, 4, 2), _example(3, 1, 2, 1)]
    wide = pack(examples, pad_id=0, row_tokens=18)
    assert wide.input_ids.shape == (1, 18) and (wide.segment_ids >= 0).all()
    assert wide.segment_ids[0].tolist() == [1] * 10 + [0] * 5 + [2] * 3
