"""test_param_order_p29.py - the order in which a PointwiseNorm registers
its parameters, as docs/training.md ("Resuming after editing the
function") states it: the function's parameters in declaration order,
then weight and bias. A module's state_dict loads by name whatever the
order; an optimizer's pairs its moments with parameters by position, so
the order is what a resumed optimizer sees."""
import pytest

torch = pytest.importorskip("torch")
import dnc.torch as dt  # noqa: E402

AB = "fn f(x; a = 1, b = 2) = a * tanh(b * x)"
BA = "fn f(x; b = 2, a = 1) = a * tanh(b * x)"


def test_declaration_order_then_affine():
    assert [n for n, _ in dt.PointwiseNorm(4, AB).named_parameters()] == \
        ["a", "b", "weight", "bias"]
    assert [n for n, _ in dt.PointwiseNorm(4, BA).named_parameters()] == \
        ["b", "a", "weight", "bias"]


def test_state_dict_by_name_optimizer_by_position():
    m1, m2 = dt.PointwiseNorm(4, AB), dt.PointwiseNorm(4, BA)
    with torch.no_grad():
        m1.a.fill_(0.25)
        m1.b.fill_(3.0)
    m2.load_state_dict(m1.state_dict())
    assert m2.a.item() == 0.25 and m2.b.item() == 3.0
    # one AdamW step on m1, its state loaded into m2's optimizer: the
    # moments follow the position, as the docs warn (a's go to b)
    opt1 = torch.optim.AdamW(m1.parameters(), lr=1e-3)
    x = torch.linspace(-2, 2, 8).reshape(2, 4)
    m1(x).pow(2).sum().backward()
    opt1.step()
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-3)
    opt2.load_state_dict(opt1.state_dict())
    assert torch.equal(opt2.state[m2.b]["exp_avg"], opt1.state[m1.a]["exp_avg"])
    assert not torch.equal(opt1.state[m1.a]["exp_avg"], opt1.state[m1.b]["exp_avg"])
