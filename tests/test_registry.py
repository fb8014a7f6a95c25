import pytest

from clusterbench.core.errors import UserError
from clusterbench.core.registry import Registry, Spec


def make_registry():
    reg = Registry("widget")

    @reg.register("alpha")
    class Alpha:
        def __init__(self, k: int | None = None, scale: float = 1.0, name: str = "x"):
            self.k, self.scale, self.name = k, scale, name

    @reg.register("needs-root")
    class NeedsRoot:
        def __init__(self, root, limit=None):
            self.root = root

    return reg


def test_spec_parses_typed_values_and_is_canonical():
    spec = Spec.parse("alpha:scale=0.5,k=10,flag=true,path=/a/b,none=none")
    assert spec.name == "alpha"
    assert spec.params == {"scale": 0.5, "k": 10, "flag": True, "path": "/a/b", "none": None}
    assert str(spec) == "alpha:flag=true,k=10,none=none,path=/a/b,scale=0.5"
    assert str(Spec.parse(str(spec))) == str(spec)
    assert str(Spec.parse("alpha")) == "alpha"


@pytest.mark.parametrize("bad", ["", "alpha:k", "alpha:=3"])
def test_malformed_spec_is_one_clear_error(bad):
    with pytest.raises(UserError):
        Spec.parse(bad)


def test_create_passes_params_and_lists():
    reg = make_registry()
    obj = reg.create("alpha:k=3,scale=2")
    assert (obj.k, obj.scale, obj.name) == (3, 2, "x")
    assert reg.list() == ["alpha", "needs-root"]
    assert reg.list("al*") == ["alpha"]
    assert reg.accepts("alpha", "k") and not reg.accepts("needs-root", "k")


def test_unknown_name_suggests_closest():
    reg = make_registry()
    with pytest.raises(UserError, match=r"unknown widget 'alpah' \(did you mean 'alpha'\?\); valid: alpha, needs-root"):
        reg.create("alpah")


def test_unknown_parameter_lists_valid_ones():
    reg = make_registry()
    with pytest.raises(UserError, match=r"unknown parameter 'scal' for widget 'alpha' \(did you mean 'scale'\?\); valid: k, scale, name"):
        reg.create("alpha:scal=3")


@pytest.mark.parametrize(("spec", "message"), [
    ("kmeans:tol=abc", "clusterer 'kmeans': tol=abc must be a number"),
    ("kmeans:max_iter=2.5", "clusterer 'kmeans': max_iter=2.5 must be an integer"),
    ("kmeans:n_init=true", "clusterer 'kmeans': n_init=true must be an integer"),
])
def test_a_number_parameter_refuses_other_values_by_name(spec, message):
    from clusterbench.methods.clusterers import CLUSTERERS

    with pytest.raises(UserError, match=message):
        CLUSTERERS.validate(spec)
    CLUSTERERS.validate("kmeans:tol=0,max_iter=5")  # an int serves a float parameter


def test_missing_required_parameter():
    with pytest.raises(UserError, match="needs parameter"):
        make_registry().create("needs-root")


def test_real_registries_are_populated():
    from clusterbench.run.runner import registries

    datasets, embedders, clusterers = registries()
    assert {"digits", "fashion-mnist", "folder"} <= set(datasets.list())
    assert {"pixels", "resnet152", "densenet121", "alexnet", "timm"} <= set(embedders.list())
    assert {"kmeans", "agglomerative", "hdbscan"} <= set(clusterers.list())


@pytest.mark.parametrize(("spec", "message"), [
    ("resnet152:compile=maybe", "embedder 'resnet152': compile=maybe must be true or false"),
    ("timm:model=resnet18,compile=1", "embedder 'timm': compile=1 must be true or false"),
])
def test_a_boolean_parameter_refuses_other_values_unless_it_admits_them(spec, message, tmp_path):
    from clusterbench.methods.embedders import EMBEDDERS

    with pytest.raises(UserError, match=message):
        EMBEDDERS.validate(spec)
    EMBEDDERS.validate("resnet152:compile=true")
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"")
    EMBEDDERS.validate(f"timm:model=resnet18,pretrained={weights}")  # declared bool | ... | existing file
    with pytest.raises(UserError, match=f"embedder 'timm': pretrained={tmp_path}/none.pt does not exist"):
        EMBEDDERS.validate(f"timm:model=resnet18,pretrained={tmp_path}/none.pt")
