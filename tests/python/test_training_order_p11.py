"""test_training_order_p11.py - dnc.convert in the order a training script
does things: a model already wrapped by DistributedDataParallel is refused
(the wrapper's gradient reducer knows the old norms' parameters only: with
find_unused_parameters=True the new norms' parameters silently drifted
apart between processes); converting first and wrapping after, and
converting a torch.compile'd model, work."""
import warnings

import pytest
import torch
from torch import nn
import torch.distributed as dist

import dnc.torch as dt


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.GELU(),
                         nn.Linear(8, 8))


@pytest.fixture
def one_process_group(tmp_path):
    if not dist.is_available():
        pytest.skip("this PyTorch has no torch.distributed")
    if dist.is_initialized():
        pytest.skip("a process group is already initialised")
    dist.init_process_group("gloo", init_method="file://%s" % (
        tmp_path / "init"), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("unused", [False, True])
def test_convert_refuses_a_ddp_wrapped_model(one_process_group, unused):
    from torch.nn.parallel import DistributedDataParallel
    model = _model()
    ddp = DistributedDataParallel(model, find_unused_parameters=unused)
    with pytest.raises(ValueError) as e:
        dt.convert_layernorm(ddp, "dyt")
    msg = str(e.value)
    assert "the model is a DistributedDataParallel" in msg, msg
    assert "Convert the model first, then wrap it" in msg, msg
    # nothing was replaced
    assert isinstance(model[1], nn.LayerNorm)
    # deeper inside (compiled, or a wrapper inside a container): its path
    holder = nn.ModuleDict({"net": ddp})
    with pytest.raises(ValueError, match="net is a DistributedDataParallel"):
        dt.convert(holder, "derf")
    assert isinstance(model[1], nn.LayerNorm)


def test_convert_then_wrap_trains_the_new_norms(one_process_group):
    from torch.nn.parallel import DistributedDataParallel
    model = dt.convert_layernorm(_model(), "dyt")
    ddp = DistributedDataParallel(model)
    x = torch.randn(4, 8)
    ddp(x).square().sum().backward()
    ref = dt.convert_layernorm(_model(), "dyt")
    ref(x).square().sum().backward()
    for (n, p), q in zip(model.named_parameters(), ref.parameters()):
        assert p.grad is not None, n
        assert torch.allclose(p.grad, q.grad, atol=1e-6), n


@pytest.mark.skipif(not dt.HAS_CUSTOM_OPS,
                    reason="torch.compile needs PyTorch 2 (custom ops)")
def test_convert_of_a_compiled_model_replaces_inside():
    model = _model()
    compiled = torch.compile(model, backend="eager")
    x = torch.randn(3, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled(x)
        out = dt.convert_layernorm(compiled, "dyt")
        assert out is compiled
        assert isinstance(model[1], dt.PointwiseNorm)
        y = out(x)
    want = model[3](nn.functional.gelu(torch.tanh(0.5 * model[0](x))))
    assert torch.allclose(y, want, atol=1e-6)


def _fsdp():
    try:
        from torch.distributed import fsdp
    except Exception:  # 1.13 under Python 3.11: a ValueError on import
        return None
    return fsdp if hasattr(fsdp, "fully_shard") else None


@pytest.mark.skipif(_fsdp() is None,
                    reason="this PyTorch has no torch.distributed.fsdp."
                           "fully_shard (FSDP2)")
def test_convert_refuses_a_model_sharded_by_fsdp(one_process_group):
    fsdp = _fsdp()
    model = _model()
    fsdp.fully_shard(model)
    with pytest.raises(ValueError) as e:
        dt.convert_layernorm(model, "dyt")
    msg = str(e.value)
    assert "the model is a module sharded by fully_shard (FSDPSequential)" \
        in msg, msg
    assert "fully_shard(convert(model, ...))" in msg, msg
    model = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NO_SHARD on one process
        wrapped = fsdp.FullyShardedDataParallel(
            model, device_id=torch.device("cpu"))
    with pytest.raises(ValueError,
                       match="the model is a FullyShardedDataParallel"):
        dt.convert_layernorm(wrapped, "dyt")
    # converting first, then sharding: the new norms' gradients arrive
    model = dt.convert_layernorm(_model(), "dyt")
    fsdp.fully_shard(model)
    model(torch.randn(3, 8)).square().sum().backward()
    assert all(p.grad is not None for p in model.parameters())
