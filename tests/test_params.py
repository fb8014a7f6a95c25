"""Declared parameter constraints (clusterbench.core.params): every entry declares every
parameter, its defaults honour the declarations, and a value breaking one is one clear line."""

from __future__ import annotations

import inspect
from typing import Annotated, Literal

import pytest

from clusterbench.core.errors import UserError
from clusterbench.core.params import DevicePattern, ExistingDir, ExistingFile, Interval, check, declared
from clusterbench.core.reduce import Reducer
from clusterbench.core.registry import Registry


def _all_entries():
    from clusterbench.core.catalog import registries

    return [(registry, name) for registry in registries() for name in registry.list()]


def test_every_entry_declares_every_parameter_and_its_defaults_honour_them():
    entries = _all_entries()
    assert len(entries) > 15
    for registry, name in entries:
        cls = registry.get(name)
        hints = declared(cls.__init__)
        for param, default in registry.parameters(name).items():
            assert param in hints, f"{registry.kind} {name!r}: parameter {param!r} has no declaration"
            if default is not inspect.Parameter.empty:
                assert check(param, default, hints[param], cls) is None, f"{registry.kind} {name!r}: default {param}"


@pytest.mark.parametrize(("kind", "spec", "message"), [
    ("clusterers", "agglomerative:linkage=foo",
     "clusterer 'agglomerative': linkage=foo is not allowed; choose one of ward, average, complete, single"),
    ("clusterers", "kmeans:n_init=-3", "clusterer 'kmeans': n_init=-3 must be >= 1"),
    ("clusterers", "kmeans:tol=-1", "clusterer 'kmeans': tol=-1 must be >= 0"),
    ("clusterers", "kmeans:init=kmeans++", "clusterer 'kmeans': init=kmeans++ is not allowed; choose one of auto, k-means++, random"),
    ("clusterers", "kmeans:backend=torch", "clusterer 'kmeans': backend=torch is not allowed; choose one of auto, faiss, sklearn"),
    ("clusterers", "kmeans:device=gpu", "clusterer 'kmeans': device=gpu is not allowed; choose one of auto, cpu, cuda, cuda:N"),
    ("clusterers", "kmeans:k=1", "clusterer 'kmeans': k=1 must be >= 2"),
    ("clusterers", "kmeans:k=many", "clusterer 'kmeans': k=many must be an integer >= 2, auto, semantic or none"),
    ("clusterers", "hdbscan:min_cluster_size=1", "clusterer 'hdbscan': min_cluster_size=1 must be >= 2"),
    ("clusterers", "hdbscan:cluster_selection_method=mean",
     "clusterer 'hdbscan': cluster_selection_method=mean is not allowed; choose one of eom, leaf"),
    ("clusterers", "deepcluster:crop_min=0", "clusterer 'deepcluster': crop_min=0 must be in (0, 1]"),
    ("clusterers", "deepcluster:lr=0", "clusterer 'deepcluster': lr=0 must be > 0"),
    ("clusterers", "deepcluster:precision=fp8",
     "clusterer 'deepcluster': precision=fp8 is not allowed; choose one of auto, fp32, bf16, fp16"),
    ("datasets", "digits:limit=0", "dataset 'digits': limit=0 must be >= 1"),
    ("datasets", "folder:root=/x", "dataset 'folder': root=/x does not exist"),
    ("datasets", "fashion-mnist:split=validation",
     "dataset 'fashion-mnist': split=validation is not allowed; choose one of train, test, all"),
    ("datasets", "cifar10:split=unlabeled", "dataset 'cifar10': split=unlabeled is not allowed; choose one of train, test, all"),
    ("embedders", "pixels:size=0", "embedder 'pixels': size=0 must be >= 1"),
    ("embedders", "resnet152:batch_size=big", "embedder 'resnet152': batch_size=big must be auto or an integer >= 1"),
    ("embedders", "resnet152:weights=/no/such/weights.pth", "embedder 'resnet152': weights=/no/such/weights.pth does not exist"),
    ("embedders", "alexnet-deepcluster:checkpoint=/no/such.pt", "embedder 'alexnet-deepcluster': checkpoint=/no/such.pt does not exist"),
    ("embedders", "timm:model=resnet18,pretrained=maybe",
     "embedder 'timm': pretrained=maybe must be true, false, none, imagenet, random or an existing file"),
])
def test_a_value_breaking_its_declaration_is_one_line_naming_it(kind, spec, message):
    from clusterbench.core.catalog import registries

    with pytest.raises(UserError) as err:
        getattr(registries(), kind).validate(spec)
    assert str(err.value) == message


@pytest.mark.parametrize(("kind", "spec"), [
    ("clusterers", "kmeans:k=auto"), ("clusterers", "kmeans:k=semantic,device=cuda:1,tol=0"),
    ("clusterers", "hdbscan:min_samples=none,max_dim=none"),
    ("datasets", "stl10:split=unlabeled"), ("datasets", "digits:limit=none"),
    ("embedders", "resnet152:weights=IMAGENET1K_V2"), ("embedders", "resnet152:weights=ResNet152_Weights.IMAGENET1K_V1"),
    ("embedders", "alexnet:weights=none"), ("embedders", "densenet121:weights=random,batch_size=8,precision=bf16"),
    ("embedders", "timm:model=resnet18,pretrained=false"), ("embedders", "timm:model=resnet18,pretrained=imagenet"),
])
def test_values_the_declarations_admit(kind, spec):
    from clusterbench.core.catalog import registries

    getattr(registries(), kind).validate(spec)


def test_an_existing_root_and_checkpoint_pass(tmp_path):
    from clusterbench.core.catalog import registries

    datasets, embedders, _ = registries()
    datasets.validate(f"folder:root={tmp_path}")
    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(UserError, match=f"root={checkpoint} does not exist"):
        datasets.validate(f"folder:root={checkpoint}")
    checkpoint.write_bytes(b"")
    embedders.validate(f"alexnet-deepcluster:checkpoint={checkpoint}")
    with pytest.raises(UserError, match=f"root={checkpoint} is not a directory"):
        datasets.validate(f"folder:root={checkpoint}")
    with pytest.raises(UserError, match=f"checkpoint={tmp_path} is not a file"):
        embedders.validate(f"alexnet-deepcluster:checkpoint={tmp_path}")


def test_an_entry_without_annotations_keeps_the_default_based_checks():
    reg = Registry("widget")

    @reg.register("plain")
    class Plain:  # a plug-in written without annotations
        def __init__(self, n=3, scale=1.0, flag=False, name="x"):
            pass

    reg.validate("plain:n=4,scale=2,flag=true,name=anything")
    for spec, message in (("plain:n=abc", "widget 'plain': n=abc must be an integer"),
                          ("plain:scale=abc", "widget 'plain': scale=abc must be a number"),
                          ("plain:flag=maybe", "widget 'plain': flag=maybe must be true or false")):
        with pytest.raises(UserError, match=message):
            reg.validate(spec)


def test_a_plug_in_with_declarations_is_checked_the_same_way(tmp_path):
    reg = Registry("widget")

    @reg.register("declared")
    class Declared:
        def __init__(self, rate: Annotated[float, Interval(0, 1, closed="neither")] = 0.5,
                     mode: Literal["a", "b"] = "a", where: Annotated[str, ExistingDir()] | None = None,
                     unknown_kind: dict | None = None):
            pass

    reg.validate(f"declared:rate=0.25,mode=b,where={tmp_path},unknown_kind=whatever")  # an unreadable type admits anything
    for spec, message in (("declared:rate=1", "rate=1 must be in (0, 1)"),
                          ("declared:mode=c", "mode=c is not allowed; choose one of a, b"),
                          ("declared:where=3", "where=3 does not exist")):
        with pytest.raises(UserError) as err:
            reg.validate(spec)
        assert str(err.value) == f"widget 'declared': {message}"


@pytest.mark.parametrize(("hint", "value", "problem"), [
    (Annotated[int, Interval(1, 10)], 10, None),
    (Annotated[int, Interval(1, 10, closed="left")], 10, "x=10 must be in [1, 10)"),
    (Annotated[float, Interval(None, 1)], 2.5, "x=2.5 must be <= 1"),
    (Annotated[float, Interval(0, None)], float("nan"), "x=nan must be >= 0"),
    (Annotated[float, Interval(0, None)], 3, None),  # an integer serves a number
    (Annotated[int, Interval(0, None)], 3.5, "x=3.5 must be an integer >= 0"),
    (Annotated[str, DevicePattern()], "cuda:0", None),
    (Annotated[str, DevicePattern()], "mps", "x=mps is not allowed; choose one of auto, cpu, cuda, cuda:N"),
    (Annotated[str, ExistingFile(only_path_like=True)], "IMAGENET1K_V2", None),
    (bool, "yes please", "x=yes please must be true or false"),
])
def test_check(hint, value, problem):
    assert check("x", value, hint) == problem


@pytest.mark.parametrize(("text", "message"), [
    ("pca=0", "reducer: pca=0 must be >= 1"),
    ("pca=1.5", "reducer: pca=1.5 must be an integer >= 1 or none"),
    ("whiten=maybe", "reducer: whiten=maybe must be true or false"),
    ("l2=2", "reducer: l2=2 must be true or false"),
    ("pca=8,backend=torch", "reducer: backend=torch is not allowed; choose one of faiss, sklearn"),
])
def test_reducer_parameters_are_declared_and_checked(text, message):
    with pytest.raises(UserError) as err:
        Reducer.parse(text)
    assert str(err.value) == message
    assert Reducer.parse("pca=8,whiten=true,l2=true,backend=sklearn").pca == 8
    with pytest.raises(UserError, match="reducer: pca=-1 must be >= 1"):
        Reducer(pca=-1).validate()
