"""test_training_flows_p28.py - what a training script does around
dnc.fit_initial: a fine-tuning model is often in train mode with a part of
it in eval mode (a frozen backbone, its dropout and its batch norms'
statistics off). fit_initial runs the model in eval mode and had put it
back with model.train(was), which sets every submodule to the model's own
mode: the frozen block trained in train mode after the fit (its dropout
on), silently. Now every module is put back in the mode it had, through
its own train() where that differs (a module overriding train(), as
LoRA's merge-on-eval layers do, sees the call)."""
import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402
from checks import ok  # noqa: E402
from torch import nn  # noqa: E402


class Merging(nn.Linear):
    """A layer whose train() does more than set the flag (loralib's
    Linear merges its update into the weight in eval mode and takes it
    out again in train mode): `merged` must follow the mode."""

    merged = False

    def train(self, mode=True):
        super().train(mode)
        self.merged = not mode
        return self


def _model():
    torch.manual_seed(0)
    block = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Dropout(0.5),
                          Merging(8, 8))
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Dropout(0.5),
                         block, Merging(8, 8), nn.LayerNorm(8),
                         nn.Linear(8, 2))


def _state(model):
    return [(n, m.training, getattr(m, "merged", None))
            for n, m in model.named_modules()]


@pytest.mark.parametrize("outer", [True, False])
def test_fit_initial_keeps_each_modules_mode(outer):
    model = _model()
    model.train(outer)
    model[3].train(not outer)   # the block in the other mode
    before = _state(model)
    batches = [torch.randn(16, 4) for _ in range(2)]
    init = dt.fit_initial(model, "dyt", batches)
    ok(sorted(init) == ["1", "3.1", "5"], "fitted at the three norms",
       sorted(init))
    after = _state(model)
    ok(after == before, "every module in the mode it had (and a module "
       "overriding train() told so)",
       [(a, b) for a, b in zip(before, after) if a != b])
    if outer:
        # the block kept in eval mode: its dropout is off, as before
        x = torch.randn(3, 8)
        ok(torch.equal(model[3](x), model[3](x)),
           "the eval-mode block's dropout stays off")


def test_fit_initial_keeps_the_mode_of_a_module_shared_by_two_blocks():
    """A dropout shared by a frozen backbone (eval) and a head (train) of
    a model in eval mode, itself in eval mode (the backbone's eval() came
    last): modules were put back one after another, parents first, and
    the head's train(True) set the shared dropout to train mode after its
    own turn, silently. Every module, the shared one too, is in the mode
    it had."""
    torch.manual_seed(0)
    drop = nn.Dropout(0.5)
    backbone = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), drop)
    head = nn.Sequential(drop, nn.Linear(8, 2))
    model = nn.Sequential(backbone, head)
    model.eval()
    head.train()
    backbone.eval()
    before = _state(model)
    ok(not drop.training and head.training and not model.training,
       "the setting")
    dt.fit_initial(model, "dyt", [torch.randn(16, 4) for _ in range(2)])
    ok(_state(model) == before and not drop.training,
       "the shared dropout stays in eval mode", _state(model))
