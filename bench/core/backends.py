"""Optional compute libraries, imported in one place so a missing one is one line naming its extra."""

from __future__ import annotations

from clusterbench.core.errors import UserError


def import_faiss():
    """faiss, or one line saying how to install it: it comes with the ``cpu`` or the ``gpu`` extra
    (two builds of one module, so the package cannot depend on either by default)."""
    try:
        import faiss
    except ImportError:
        raise UserError("faiss is not installed: pip install 'clusterbench[cpu]' "
                        "(or 'clusterbench[gpu]' on a CUDA machine)") from None
    return faiss


def faiss_gpu_available() -> bool:
    try:
        faiss = import_faiss()
    except UserError:  # scikit-learn's engine still works; the faiss one says what to install
        return False
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0  # third-party: CPU builds lack it
